"""``export --to perfetto`` / ``--to speedscope`` and ``run --clock``: checked against
the trace's own lines."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.format.recording import next_tick

from .helpers import Check, Runner, client_trace, lines_of, record


@pytest.fixture(scope="module")
def clocked(tmp_path_factory: pytest.TempPathFactory, blocktrace_cli: Runner,
            programs: Path) -> Path:
    out = tmp_path_factory.mktemp("clocked") / "clocked.jsonl"
    return record(blocktrace_cli, out, programs / "queried.py", "--clock")


def _export(blocktrace_cli: Runner, kind: str, out: Path, *traces: Path,
            extra: tuple[str, ...] = ()) -> dict[str, Any]:
    done = blocktrace_cli("export", *traces, "--to", kind, out, *extra)
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text())  # type: ignore[no-any-return]


def _ops_before(lines: list[dict[str, Any]]) -> list[int]:
    """For each line, the number of op lines before it (the instruction clock)."""
    out, step = [], 0
    for d in lines:
        out.append(step)
        if "pc" in d and "event" not in d:
            step += 1
    return out


def test_run_clock_stamps_calls_returns_exceptions_only(clocked: Path,
                                                        blocktrace_cli: Runner) -> None:
    lines = lines_of(clocked)
    for d in lines:
        stamped = d.get("event") in ("call", "return", "raise", "reraise", "handled")
        assert ("clock" in d) == stamped, d
    clocks = [d["clock"] for d in lines if "clock" in d]
    assert clocks == sorted(clocks) and clocks[0] > 0
    assert clocks[-1] <= lines[-1]["time"]  # within the run (the summary's run time)
    assert blocktrace_cli("verify", clocked).returncode == 0
    done = blocktrace_cli("query", clocked, "SELECT count(*) AS n FROM calls WHERE clock_in "
                          "IS NOT NULL AND clock_out >= clock_in", "--json")
    assert json.loads(done.stdout) == [{"n": sum(1 for d in lines if d.get("event") == "call")}]


def test_perfetto_on_the_instruction_clock(queried: Path, blocktrace_cli: Runner,
                                           tmp_path: Path) -> None:
    doc = _export(blocktrace_cli, "perfetto", tmp_path / "t.json", queried)
    lines = lines_of(queried)
    steps = _ops_before(lines)
    events = doc["traceEvents"]
    pid = lines[0]["pid"]
    assert {e["pid"] for e in events} == {pid}
    meta = [e for e in events if e["ph"] == "M"]
    assert {m["name"] for m in meta} == {"process_name", "thread_name"}
    begins = [e for e in events if e["ph"] == "B"]
    calls = [(n, d) for n, d in enumerate(lines) if d.get("event") == "call"]
    assert [(b["name"], b["ts"]) for b in begins] == [(d["name"], steps[n]) for n, d in calls]
    depth = 0  # slices nest: every E closes the last open B, time never goes back
    open_: list[str] = []
    last = 0
    for e in events:
        if e["ph"] in ("B", "E", "i"):
            assert e["ts"] >= last
            last = e["ts"]
        if e["ph"] == "B":
            open_.append(e["name"])
            depth = max(depth, len(open_))
        elif e["ph"] == "E":
            assert open_.pop() == e["name"]
    assert open_ == [] and depth == max(d["depth"] for d in lines if "depth" in d)
    instants = [e for e in events if e["ph"] == "i"]
    raised = [(n, d) for n, d in enumerate(lines) if d.get("event") in ("raise", "handled")]
    assert [(i["name"], i["ts"]) for i in instants] == [
        (f"{d['event']} ValueError", steps[n]) for n, d in raised]
    assert "instruction clock" in doc["otherData"]["clock"]


def test_perfetto_on_the_wall_clock(clocked: Path, blocktrace_cli: Runner,
                                    tmp_path: Path) -> None:
    doc = _export(blocktrace_cli, "perfetto", tmp_path / "t.json", clocked)
    lines = lines_of(clocked)
    begins = [e["ts"] for e in doc["traceEvents"] if e["ph"] == "B"]
    assert begins == [d["clock"] / 1000 for d in lines if d.get("event") == "call"]
    assert "wall clock" in doc["otherData"]["clock"] and doc["displayTimeUnit"] == "ns"
    steps = _export(blocktrace_cli, "perfetto", tmp_path / "s.json", clocked,
                    extra=("--clock", "steps"))
    assert "instruction clock" in steps["otherData"]["clock"]


def test_speedscope_by_steps(queried: Path, blocktrace_cli: Runner, tmp_path: Path) -> None:
    doc = _export(blocktrace_cli, "speedscope", tmp_path / "s.json", queried)
    lines = lines_of(queried)
    frames = doc["shared"]["frames"]
    assert {f["name"] for f in frames} == {d["name"] for d in lines if d.get("event") == "call"}
    (profile,) = doc["profiles"]
    assert profile["type"] == "evented" and profile["unit"] == "none"
    ops = sum(1 for d in lines if "pc" in d and "event" not in d)
    assert profile["endValue"] == ops
    stack: list[int] = []
    last = 0
    for e in profile["events"]:
        assert e["at"] >= last
        last = e["at"]
        if e["type"] == "O":
            stack.append(e["frame"])
        else:
            assert stack.pop() == e["frame"]
    assert stack == []
    fact = next(i for i, f in enumerate(frames) if f["name"] == "fact")
    assert sum(1 for e in profile["events"] if e["type"] == "O" and e["frame"] == fact) == 6


def test_timeline_bad_input(queried: Path, blocktrace_cli: Runner, one_line_error: Check,
                            tmp_path: Path) -> None:
    out = tmp_path / "t.json"
    done = blocktrace_cli("export", client_trace("geth", "statetest1"), "--to", "perfetto", out)
    assert done.returncode == 2 and "not a blocktrace trace" in done.stderr
    one_line_error(done)
    done = blocktrace_cli("export", queried, "--to", "perfetto", out, "--clock", "wall")
    assert done.returncode == 2 and "--clock" in done.stderr and not out.exists()
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(queried.read_bytes().replace(b'"name":"fact"', b'"name":"fakt"', 1))
    done = blocktrace_cli("export", bad, "--to", "speedscope", out)
    assert done.returncode == 1 and "TAMPERED" in done.stderr and not out.exists()
    one_line_error(done)
    doc = _export(blocktrace_cli, "perfetto", out, bad, extra=("--allow-unverified",))
    (name,) = [e["args"]["name"] for e in doc["traceEvents"] if e["name"] == "process_name"]
    assert name.endswith("[tampered]")


def test_several_traces_are_several_processes(queried: Path, fib: Path, blocktrace_cli: Runner,
                                              tmp_path: Path) -> None:
    doc = _export(blocktrace_cli, "perfetto", tmp_path / "t.json", queried, fib)
    names = {e["pid"]: e["args"]["name"] for e in doc["traceEvents"]
             if e["name"] == "process_name"}
    assert set(names) == {lines_of(queried)[0]["pid"], lines_of(fib)[0]["pid"]}
    assert [t["status"] for t in doc["otherData"]["traces"]] == ["sealed", "sealed"]


@pytest.mark.parametrize("kind", ["perfetto", "speedscope"])
def test_op_lines_skimmed_in_c_give_the_same_timeline(
    oddlines: Path, fib: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """The timelines count plain op lines in C (``columns.skim``) and decode the rest:
    the same file as decoding every line, op lines in other forms included."""
    import io

    from blocktrace._native import extension
    from blocktrace.format import wholelines
    from blocktrace.query import columns
    from blocktrace.query.timeline import write_perfetto, write_speedscope

    if extension("blocktrace.format._cscan") is None:
        pytest.skip("the C extension is not built, or BLOCKTRACE_PURE is set")
    lines = fib.read_bytes().splitlines(keepends=True)
    lines[40] = lines[40].replace(b',"hash":', b',"thread":1,"hash":')  # an op line Python reads
    edited = tmp_path / "edited.jsonl"
    edited.write_bytes(b"".join(lines[:-1]))  # no summary: op lines after the last call
    paths = [str(oddlines), str(edited)]
    write = write_perfetto if kind == "perfetto" else write_speedscope
    monkeypatch.setattr(wholelines, "CHUNK", 4096)
    monkeypatch.setattr(columns, "SKIM_ROWS", 50)
    got = io.BytesIO()
    write(paths, ["sealed", "unsealed"], got, clock="steps")
    monkeypatch.setattr(columns, "extension", lambda name: None)  # the reference: all decoded
    want = io.BytesIO()
    write(paths, ["sealed", "unsealed"], want, clock="steps")
    assert got.getvalue() == want.getvalue() and len(got.getvalue()) > 1000


def test_the_verify_pass_is_the_index_s(queried: Path, blocktrace_cli: Runner, tmp_path: Path,
                                        one_line_error: Check) -> None:
    """What the export says of the trace comes from its index, as ``show``'s: built
    and kept by the first export (so ``show``, ``prove`` and the next export read no
    line to know it), and a trace edited since is checked again, never trusted to
    its old index."""
    trace = tmp_path / "t.jsonl"
    shutil.copyfile(queried, trace)
    out = tmp_path / "t.json"
    first = _export(blocktrace_cli, "perfetto", out, trace)
    kept = trace.with_name("t.jsonl.idx")
    assert kept.exists()
    stamp = os.stat(kept).st_mtime_ns
    assert _export(blocktrace_cli, "perfetto", out, trace, extra=("--force",)) == first
    assert os.stat(kept).st_mtime_ns == stamp  # read, not built again
    st = os.stat(trace)
    next_tick(tmp_path, st.st_ctime_ns)
    data = trace.read_bytes()
    with open(trace, "r+b") as f:  # in place: same size, same modification time
        f.write(data.replace(b'"name":"fact"', b'"name":"fakt"', 1))
    os.utime(trace, ns=(st.st_atime_ns, st.st_mtime_ns))
    done = blocktrace_cli("export", trace, "--to", "speedscope", tmp_path / "s.json")
    assert done.returncode == 1 and "TAMPERED" in done.stderr
    one_line_error(done)
