"""The viewer's JSON API over real HTTP against real traces: a traced program with
``--locals``, geth and revm traces from ../shared/refdata, a diff (docs/VIEW.md)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from blocktrace.chain.rewrite import rechain_trace
from blocktrace.eip3155 import read_all
from blocktrace.format.versions import FORMAT_VERSION
from blocktrace.view.model import ClientModel, Model, TraceModel, open_model
from blocktrace.view.server import ViewServer
from blocktrace.view.session import Session

from .api_support import PROGRAM, REFDATA, api, get, record


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("view-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BLOCKTRACE_VIEW_CACHE", str(directory))
        yield directory


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return record(tmp_path_factory.mktemp("api"))


def _serve(models: list[Model]) -> ViewServer:
    for model in models:
        if isinstance(model, TraceModel):
            assert model.wait(120)
    server = ViewServer(Session(models))
    server.start()
    return server


@pytest.fixture(scope="module")
def base(traced: Path, cache: Path) -> Iterator[str]:
    server = _serve([TraceModel(str(traced))])
    yield server.url
    server.shutdown()
    server.server_close()


def _steps(base: str, t: int = 0) -> list[dict]:  # type: ignore[type-arg]
    meta = api(base, "meta")["traces"][t]
    steps: list[dict] = []  # type: ignore[type-arg]
    while len(steps) < meta["steps"]:
        steps += api(base, "window", t=t, **{"from": len(steps), "count": 500})["steps"]
    return steps


def _line_of(text: str) -> int:
    return PROGRAM.splitlines().index(text) + 1


def test_meta_describes_the_trace(base: str, traced: Path) -> None:
    meta = api(base, "meta")
    assert meta["mode"] == "trace"
    (trace,) = meta["traces"]
    assert trace["kind"] == "blocktrace" and trace["dialect"] == "blocktrace"
    assert trace["version"] == FORMAT_VERSION and trace["level"] == "op" and trace["ready"]
    assert trace["hasValues"] is True and trace["threads"] == []
    assert trace["steps"] == len(read_all(str(traced))[0])  # as blocktrace diff counts them
    assert trace["lines"] == len(traced.read_bytes().splitlines())
    assert trace["summary"]["pass"] is True
    assert trace["header"]["blocktrace"] == FORMAT_VERSION and "hash" not in trace["header"]
    assert str(traced.parent / "prog.py") in trace["files"]


def test_verify_says_what_blocktrace_verify_says(base: str) -> None:
    answer = _verdict(base)
    assert answer["status"] == "sealed" and len(answer["head"]) == 64


def _verdict(base: str, t: int = 0) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        answer = api(base, "verify", t=t)
        if answer["status"] != "pending":
            return answer  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise AssertionError("verify never finished")


def test_a_tampered_trace_opens_and_is_never_shown_valid(
    traced: Path, tmp_path: Path, cache: Path
) -> None:
    lines = traced.read_bytes().splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if b'"total":11' in line)
    lines[at] = lines[at].replace(b'"total":11', b'"total":12')
    forged = tmp_path / "forged.jsonl"
    forged.write_bytes(b"".join(lines))
    server = _serve([TraceModel(str(forged))])
    try:
        answer = _verdict(server.url)
        assert answer["status"] == "tampered" and answer["line"] == at + 1
        steps = _steps(server.url)  # it still opens: every step is there
        assert any(s["values"] and s["values"]["locals"].get("total") == 12 for s in steps)
    finally:
        server.shutdown()
        server.server_close()


def test_a_trace_cut_short_opens_as_unsealed(traced: Path, tmp_path: Path, cache: Path) -> None:
    lines = traced.read_bytes().splitlines(keepends=True)
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(b"".join(lines[:40]) + lines[40][:25])
    server = _serve([TraceModel(str(cut))])
    try:
        assert _verdict(server.url)["status"] == "unsealed"
        meta = api(server.url, "meta")["traces"][0]
        assert meta["summary"] is None and meta["steps"] > 0
        last = meta["steps"] - 1
        assert api(server.url, "stack", step=last)["frames"]  # open frames end at the cut
        assert api(server.url, "nav", step=last, how="out")["step"] is None
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("suffix", [".jsonl.zst", ".jsonl.gz"])
def test_a_compressed_trace_opens_as_the_blocktrace_trace_it_is(
    suffix: str, tmp_path: Path, cache: Path
) -> None:
    """A compact .zst starts with a skippable frame, not zstd's magic: it was
    read as an EIP-3155 client trace (no verdict, no source, no values)."""
    script = tmp_path / "prog.py"
    script.write_text(PROGRAM)
    trace = tmp_path / f"prog{suffix}"
    proc = subprocess.run([sys.executable, "-m", "blocktrace", "run", "--locals", "changes",
                           "-o", str(trace), str(script)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    model = open_model(str(trace))
    assert isinstance(model, TraceModel)
    server = _serve([model])
    try:
        meta = api(server.url, "meta")["traces"][0]
        assert meta["kind"] == "blocktrace" and meta["hasValues"] is True
        assert _verdict(server.url)["status"] == "sealed"
        assert api(server.url, "source", file=str(script))["text"] == PROGRAM
    finally:
        server.shutdown()
        server.server_close()


def test_window_gives_each_step_in_order(base: str, traced: Path) -> None:
    steps = _steps(base)
    assert [s["step"] for s in steps] == list(range(len(steps)))
    lines = traced.read_bytes().splitlines()
    for s in steps:
        assert lines[s["line"] - 1].startswith(b'{"pc":%d,"op":%d,' % (s["pc"], s["op"]))
    adds = [s for s in steps if s["function"] == "add"]
    assert adds and all(s["depth"] == 3 and s["file"].endswith("prog.py") for s in adds)
    raised = [s for s in steps if s["event"] == "raise"]
    assert len(raised) == 1 and raised[0]["error"] == "ValueError: boom"
    assert raised[0]["lineno"] == _line_of('        raise ValueError("boom")')
    part = api(base, "window", **{"from": 5, "count": 3})
    assert part["steps"] == steps[5:8]
    assert api(base, "window", **{"from": len(steps), "count": 3})["steps"] == []


def test_steps_are_numbered_as_blocktrace_diff_numbers_them(base: str, traced: Path) -> None:
    """An exception line at the pc of the step before it belongs to that step; the
    ``handled`` line (the handler's pc) is a step of its own, in diff as here."""
    differ_steps, _ = read_all(str(traced))
    steps = _steps(base)
    assert [(s["pc"], s["line"]) for s in steps] == [(d.pc, d.lineno) for d in differ_steps]
    handled = [s for s in steps if s["event"] == "handled"]
    assert len(handled) == 1 and handled[0]["opName"] == "PUSH_EXC_INFO"
    assert api(base, "nav", step=0, how="next-exception")["step"] == next(
        s["step"] for s in steps if s["event"] == "raise")


def test_stack_lists_the_frames_innermost_first(base: str) -> None:
    steps = _steps(base)
    inside = next(s for s in steps if s["function"] == "add")
    frames = api(base, "stack", step=inside["step"])["frames"]
    assert [f["function"] for f in frames] == ["add", "main", "<module>"]
    assert [f["depth"] for f in frames] == [3, 2, 1]
    assert frames[0]["callStep"] == inside["step"]  # the first step of the call
    assert frames[1]["line"] == _line_of("        total = add(total, i * 11)")
    assert frames[2]["line"] == _line_of("main()")


def _values(base: str, step: int) -> dict[str, tuple[object, int]]:
    got = api(base, "values", step=step)["values"]
    return {v["name"]: (v["value"], v["changedAt"]) for v in got if v["scope"] == "locals"}


def test_values_are_what_each_name_held_at_the_step(base: str) -> None:
    steps = _steps(base)
    printing = next(s for s in steps if s["lineno"] == _line_of("    print(total)")
                    and s["function"] == "main")
    values = _values(base, printing["step"])
    assert values["total"][0] == 66 and values["i"][0] == 3
    # changedAt is the step whose recorded values changed it
    changed = steps[values["total"][1]]
    assert changed["values"]["locals"]["total"] == 66
    # before the loop total is 0 and i does not exist yet
    first = next(s for s in steps if s["lineno"] == _line_of("    for i in range(4):"))
    before = _values(base, first["step"])
    assert before["total"][0] == 0 and "i" not in before
    # a fresh call of add sees only its own arguments
    add_calls = [s for s in steps if s["function"] == "add" and s["values"]]
    last_call = add_calls[-1]
    inside = _values(base, last_call["step"])
    assert inside["a"][0] == 33 and inside["b"][0] == 33 and "i" not in inside


def test_values_in_locals_on_mode_keep_the_step_of_the_change(tmp_path: Path, cache: Path) -> None:
    trace = record(tmp_path, "--locals", "on", name="full")
    server = _serve([TraceModel(str(trace))])
    try:
        steps = _steps(server.url)
        printing = next(s for s in steps if s["lineno"] == _line_of("    print(total)"))
        values = _values(server.url, printing["step"])
        assert values["total"][0] == 66
        # `on` records total at every line; its change is where 66 first appeared
        first_66 = next(s["step"] for s in steps if s["function"] == "main" and s["values"]
                        and s["values"]["locals"].get("total") == 66)
        assert values["total"][1] == first_66
    finally:
        server.shutdown()
        server.server_close()


def test_a_line_level_trace_steps_line_by_line(tmp_path: Path, cache: Path) -> None:
    trace = record(tmp_path, "--level", "line", "--locals", "changes", name="lines")
    server = _serve([TraceModel(str(trace))])
    try:
        meta = api(server.url, "meta")["traces"][0]
        assert meta["level"] == "line"
        steps = _steps(server.url)
        assert len(steps) == meta["steps"] > 0
        printing = next(s for s in steps if s["lineno"] == _line_of("    print(total)"))
        assert _values(server.url, printing["step"])["total"][0] == 66
        frames = api(server.url, "stack", step=printing["step"])["frames"]
        assert [f["function"] for f in frames] == ["main", "<module>"]
        loop_body = _line_of("        total = add(total, i * 11)")
        call = next(s for s in steps if s["lineno"] == loop_body)
        over = api(server.url, "nav", step=call["step"], how="over")["step"]
        assert steps[over]["function"] == "main"
    finally:
        server.shutdown()
        server.server_close()


def test_source_gives_the_committed_text_and_hit_counts(base: str, traced: Path) -> None:
    file = str(traced.parent / "prog.py")
    answer = api(base, "source", file=file)
    assert answer["text"] == PROGRAM and answer["reason"] == ""
    hits = answer["hits"]
    assert hits[str(_line_of("    total = a + b"))] == 4
    assert hits[str(_line_of("        total = add(total, i * 11)"))] == 4
    assert hits[str(_line_of("    print(total)"))] == 1


def test_source_of_a_changed_file_is_withheld(tmp_path: Path, cache: Path) -> None:
    trace = record(tmp_path, "--locals", "changes", "--no-embed-source")
    (tmp_path / "prog.py").write_text(PROGRAM.replace("boom", "bang"))
    server = _serve([TraceModel(str(trace))])
    try:
        answer = api(server.url, "source", file=str(tmp_path / "prog.py"))
        assert answer["text"] is None and "missing or changed" in answer["reason"]
        assert answer["hits"]  # the counts come from the trace, not the file
    finally:
        server.shutdown()
        server.server_close()


def test_embedded_source_shows_what_ran_when_the_file_is_gone(
    tmp_path: Path, cache: Path
) -> None:
    trace = record(tmp_path)  # run embeds the source by default
    (tmp_path / "prog.py").write_text("changed after the run\n")
    server = _serve([TraceModel(str(trace))])
    try:
        answer = api(server.url, "source", file=str(tmp_path / "prog.py"))
        assert answer["text"] == PROGRAM and answer["embedded"] is True
        (tmp_path / "prog.py").unlink()
        assert api(server.url, "source", file=str(tmp_path / "prog.py"))["text"] == PROGRAM
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("name", ["/etc/passwd", "/etc/shadow", "~/.ssh/id_rsa", "../prog.py",
                                  "prog.py", "/dev/zero", ""])
def test_source_serves_no_file_the_trace_does_not_name(base: str, name: str) -> None:
    status, _, body = get(f"{base}api/source?file={name}")
    assert status in (200, 400)
    assert b"root:" not in body and b"def add" not in body


@pytest.mark.parametrize("target", ["/etc/passwd", "/dev/zero", "secret"])
def test_a_forged_trace_naming_another_file_gets_nothing_of_it(
    tmp_path: Path, cache: Path, target: str
) -> None:
    """A re-chained trace (valid!) that names another file: its hash cannot match."""
    trace = record(tmp_path, "--locals", "changes", "--no-embed-source")
    if target == "secret":
        secret = tmp_path / "secret.py"
        secret.write_text("PASSWORD = 'hunter2'\n")
        target = str(secret)
    old = msgspec.json.encode(str(tmp_path / "prog.py"))
    new = msgspec.json.encode(target)
    trace.write_bytes(rechain_trace(trace.read_bytes(),
                                    lambda _, body: body.replace(old, new)))
    server = _serve([TraceModel(str(trace))])
    try:
        assert _verdict(server.url)["status"] == "sealed"  # the forger re-chained it
        assert target in api(server.url, "meta")["traces"][0]["files"]
        status, _, body = get(f"{server.url}api/source?file={target}")
        answer = msgspec.json.decode(body)
        assert status == 200 and answer["text"] is None
        assert "missing or changed" in answer["reason"]
        assert b"root:" not in body and b"hunter2" not in body
    finally:
        server.shutdown()
        server.server_close()


def test_nav_moves_as_a_debugger_does(base: str) -> None:
    steps = _steps(base)
    call_line = _line_of("        total = add(total, i * 11)")
    at_call = next(s for s in steps if s["lineno"] == call_line and s["opName"] == "CALL")
    nav = lambda how, step, **kw: api(base, "nav", step=step, how=how, **kw)["step"]  # noqa: E731
    into = nav("next", at_call["step"])
    assert steps[into]["function"] == "add"
    over = nav("over", at_call["step"])
    assert steps[over]["function"] == "main" and over > into
    assert all(s["depth"] > 2 for s in steps[at_call["step"] + 1:over])
    assert nav("back-over", over) == at_call["step"]
    out = nav("out", into + 1)
    assert steps[out]["function"] == "main" and steps[out - 1]["function"] == "add"
    assert nav("back-out", into + 1) == at_call["step"]
    assert nav("prev", 0) is None and nav("next", len(steps) - 1) is None
    raised = nav("next-exception", 0)
    assert steps[raised]["event"] == "raise"
    assert nav("prev-exception", raised) is None
    handled = nav("next-exception", raised)  # the handler's step, a step of its own
    assert steps[handled]["event"] == "handled"
    assert nav("next-exception", handled) is None
    calls = [s["step"] for s in steps if s["function"] == "add"
             and (s["step"] == 0 or steps[s["step"] - 1]["function"] != "add")]
    assert len(calls) == 4
    assert nav("next-call", 0, function="add") == calls[0]
    assert nav("next-call", calls[0], function="add") == calls[1]
    assert nav("prev-call", calls[2], function="add") == calls[1]
    file = steps[calls[0]]["file"]
    body = _line_of("    total = a + b")
    hits = [s["step"] for s in steps if s["lineno"] == body and s["function"] == "add"
            and steps[s["step"] - 1]["function"] != "add"]  # entries into the line
    assert len(hits) == 4
    assert nav("next-hit", 0, file=file, line=body) == hits[0]
    assert nav("next-hit", hits[0], file=file, line=body) == hits[1]
    assert nav("next-hit", hits[0] + 1, file=file, line=body) == hits[1]
    assert nav("prev-hit", hits[-1], file=file, line=body) == hits[-2]
    assert nav("prev-hit", hits[-1] + 2, file=file, line=body) == hits[-1]
    assert nav("next-hit", hits[-1], file=file, line=body) is None


def test_search_finds_when_a_name_became_a_value(base: str) -> None:
    steps = _steps(base)
    found = api(base, "search", name="total", text="66")
    assert not found["truncated"]
    main_hits = [m for m in found["matches"] if steps[m["step"]]["function"] == "main"]
    assert len(main_hits) == 1 and main_hits[0]["value"] == 66
    assert steps[main_hits[0]["step"]]["values"]["locals"]["total"] == 66
    every = api(base, "search", name="total", text="")["matches"]
    assert [m["value"] for m in every if steps[m["step"]]["function"] == "main"] == [
        0, 11, 33, 66]  # add(0, 0) leaves it 0: no change recorded
    assert api(base, "search", name="nosuchname", text="")["matches"] == []
    limited = api(base, "search", name="total", text="", limit=2)
    assert len(limited["matches"]) == 2 and limited["truncated"]
    rest = api(base, "search", name="total", text="", limit=1000, **{"from": limited["next"]})
    assert limited["matches"] + rest["matches"] == api(base, "search", name="total",
                                                       text="")["matches"]
    assert rest["next"] is None and not rest["truncated"]


def test_timeline_gives_calls_as_nested_bars(base: str) -> None:
    steps = _steps(base)
    whole = api(base, "timeline", **{"from": 0, "to": len(steps) - 1, "buckets": 1000})
    names = [c["function"] for c in whole["calls"]]
    assert names.count("add") == 4 and names.count("main") == 1
    for call in whole["calls"]:
        inside = steps[call["start"]:call["end"] + 1]
        assert inside and inside[0]["function"] == call["function"]
        assert min(s["depth"] for s in inside) == call["depth"]
    coarse = api(base, "timeline", **{"from": 0, "to": len(steps) - 1, "buckets": 2})
    assert {c["function"] for c in coarse["calls"]} == {"<module>", "main"}
    add = next(c for c in whole["calls"] if c["function"] == "add")
    zoomed = api(base, "timeline", **{"from": add["start"] + 1, "to": add["end"],
                                      "buckets": 10})
    assert [c["function"] for c in zoomed["calls"]] == ["<module>", "main", "add"]


# -- client traces ---------------------------------------------------------------------


def _client(name: str, test: str = "stackUnderflow_nonzeroMem") -> Path:
    path = REFDATA / name / f"{test}.jsonl"
    if not path.exists():
        pytest.skip(f"reference traces absent ({path}): ../shared/refdata is not checked out")
    return path


@pytest.mark.parametrize("client", ["geth", "revm"])
def test_client_traces_show_stack_memory_and_summary(client: str, cache: Path) -> None:
    path = _client(client)
    model = open_model(str(path))
    assert isinstance(model, ClientModel)
    server = _serve([model])
    try:
        meta = api(server.url, "meta")["traces"][0]
        assert meta["kind"] == "eip3155" and meta["dialect"] == client
        assert meta["steps"] == 11 and meta["summary"] is not None
        assert api(server.url, "verify")["status"] == "unchained"
        steps = _steps(server.url)
        assert len(steps) == 11 and steps[0]["opName"] == "PUSH1"
        assert steps[0]["stack"] == [] and steps[1]["stack"] == ["0x0"]
        top_first = steps[4]["stack"]
        assert top_first[0] == "0x2"  # top of the stack first
        failing = api(server.url, "nav", step=0, how="next-exception")["step"]
        assert steps[failing]["error"]
        assert api(server.url, "source", file="/etc/passwd")["text"] is None
        assert api(server.url, "values", step=0)["values"] == []
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("client", ["geth", "revm"])
def test_client_call_frames_come_from_the_depth(client: str, cache: Path) -> None:
    server = _serve([open_model(str(_client(client, "negative_refund")))])
    try:
        steps = _steps(server.url)
        inner = next(s for s in steps if s["depth"] == 2)
        assert steps[inner["step"] - 1]["opName"] == "CREATE2"
        frames = api(server.url, "stack", step=inner["step"] + 1)["frames"]
        assert [(f["function"], f["depth"]) for f in frames] == [
            ("CREATE2", 2), ("transaction", 1)]
        assert frames[1]["pc"] == steps[inner["step"] - 1]["pc"]
        back = api(server.url, "nav", step=inner["step"] + 1, how="back-out")["step"]
        assert back == inner["step"] - 1
        out = api(server.url, "nav", step=inner["step"] + 1, how="out")["step"]
        assert steps[out]["depth"] == 1 and steps[out - 1]["depth"] == 2
        assert api(server.url, "nav", step=inner["step"] - 1, how="over")["step"] == out
        bars = api(server.url, "timeline", **{"from": 0, "to": len(steps) - 1,
                                              "buckets": 1000})["calls"]
        assert [b["function"] for b in bars] == [
            "transaction", "CREATE2", "CALLCODE", "DELEGATECALL"]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("client", ["geth", "revm"])
def test_client_search_finds_a_stack_word(client: str, cache: Path) -> None:
    server = _serve([open_model(str(_client(client, "negative_refund")))])
    try:
        steps = _steps(server.url)
        found = api(server.url, "search", name="stack", text="0xff", limit=5)
        assert found["matches"]
        for match in found["matches"]:
            assert match["value"] == steps[match["step"]]["stack"]
            assert any("0xff" in word for word in match["value"])
        status, _, _ = get(f"{server.url}api/search?name=nosuch&text=1")
        assert status == 400
    finally:
        server.shutdown()
        server.server_close()


def test_memory_is_shown_when_the_client_writes_it(cache: Path) -> None:
    path = _client("geth", "00000936-mixed-1")
    with_memory = [i for i, line in enumerate(path.read_bytes().splitlines())
                   if b'"memory"' in line]
    model = open_model(str(path))
    server = _serve([model])
    try:
        steps = _steps(server.url)
        shown = [s for s in steps if s["memory"] is not None]
        assert bool(shown) == bool(with_memory)
    finally:
        server.shutdown()
        server.server_close()


# -- diff ------------------------------------------------------------------------------


def test_diff_of_two_runs_marks_the_divergence(tmp_path: Path, cache: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = record(tmp_path / "a")
    b = record(tmp_path / "b", program=PROGRAM.replace("range(4)", "range(5)"))
    server = _serve([TraceModel(str(a)), TraceModel(str(b))])
    try:
        assert api(server.url, "meta")["mode"] == "diff"
        for _ in range(400):
            diff = api(server.url, "diff")
            if diff["status"] != "pending":
                break
        assert diff["status"] == "done" and diff["version"] == 2 and not diff["equal"]
        first = diff["firstDivergence"]
        hunk = diff["hunks"][0]
        assert hunk["aSteps"] == [hunk["aStart"], hunk["aStart"] + hunk["aCount"]]
        assert hunk["bSteps"] == [hunk["bStart"], hunk["bStart"] + hunk["bCount"]]
        assert diff["segments"][0] == {"a": 0, "b": 0, "count": first["step"]}
        assert first["aStep"] == first["step"] == first["bStep"]
        steps_a, steps_b = _steps(server.url, 0), _steps(server.url, 1)
        at = first["step"]
        assert steps_a[at - 1]["pc"] == steps_b[at - 1]["pc"]
        assert first["a"]["pc"] == steps_a[at]["pc"] and first["b"]["pc"] == steps_b[at]["pc"]
        for t in (0, 1):
            assert api(server.url, "verify", t=t)["status"] in ("pending", "sealed")
    finally:
        server.shutdown()
        server.server_close()


def test_diff_of_two_clients(cache: Path) -> None:
    a, b = _client("geth", "negative_refund"), _client("revm", "negative_refund")
    server = _serve([open_model(str(a)), open_model(str(b))])
    try:
        for _ in range(400):
            diff = api(server.url, "diff")
            if diff["status"] != "pending":
                break
        assert diff["status"] == "done"
        assert diff["inputs"]["a"]["dialect"] == "geth"
        assert diff["inputs"]["b"]["dialect"] == "revm"
        assert diff["equal"] is True
        assert diff["segments"] == [{"a": 0, "b": 0, "count": diff["steps"][0]}]
    finally:
        server.shutdown()
        server.server_close()


def test_a_call_level_trace_steps_through_calls_and_returns(tmp_path: Path, cache: Path) -> None:
    """Each call and each return is a step (and the exception): stepping, the
    stack, over/out, the timeline and hit counts (calls per function) work; the
    page is told that diff counts them too and show only the exceptions."""
    trace = record(tmp_path, "--level", "call", name="calls")
    server = _serve([TraceModel(str(trace))])
    try:
        meta = api(server.url, "meta")["traces"][0]
        assert meta["level"] == "call" and "a step is a call, a return" in meta["stepNote"]
        # diff compares call-level traces by these steps (its header counts them)
        assert "as blocktrace diff counts them; blocktrace show counts only the exceptions" in (
            meta["stepNote"])
        steps = _steps(server.url)
        assert len(steps) == meta["steps"]
        events = [(s["event"], s["function"]) for s in steps]
        # <module> and main called, add four times, the raise, then returns
        assert events[:4] == [("call", "<module>"), ("call", "main"), ("call", "add"),
                              ("return", "add")]
        assert events.count(("call", "add")) == events.count(("return", "add")) == 4
        assert events[-1] == ("return", "<module>")
        assert any(s["event"] == "raise" and "boom" in s["error"] for s in steps)
        first_add = steps[2]
        assert first_add["lineno"] == _line_of("def add(a, b):")
        frames = api(server.url, "stack", step=first_add["step"])["frames"]
        assert [f["function"] for f in frames] == ["add", "main", "<module>"]
        over = api(server.url, "nav", step=first_add["step"], how="over")["step"]
        assert steps[over]["event"] == "return" and steps[over]["function"] == "add"
        assert steps[over]["pc"] is not None and steps[over]["gas"].startswith("0x")
        out = api(server.url, "nav", step=first_add["step"], how="out")["step"]
        # main's next event after the four adds: its raise
        assert (steps[out]["event"], steps[out]["function"]) == ("raise", "main")
        nxt = api(server.url, "nav", step=first_add["step"], how="next-call",
                  function="add")["step"]
        assert steps[nxt]["event"] == "call" and nxt > over
        exception = api(server.url, "nav", step=0, how="next-exception")["step"]
        assert steps[exception]["event"] == "raise"
        timeline = api(server.url, "timeline", **{"from": 0, "to": len(steps) - 1,
                                                  "buckets": 400})
        adds = [c for c in timeline["calls"] if c["function"] == "add"]
        assert len(adds) == 4 and all(c["end"] == c["start"] + 1 for c in adds)
        hits = api(server.url, "source", file=str(tmp_path / "calls.py"))["hits"]
        assert hits[str(_line_of("def add(a, b):"))] == 5  # add's 4 calls, <module>'s line 1
        assert hits[str(_line_of("def main():"))] == 1
    finally:
        server.shutdown()
        server.server_close()
