"""A traced program with two threads: every step names its thread, the stack is the
stack of that step's thread, stepping over stays on it (real trace, real HTTP)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from blocktrace.view.model import TraceModel
from blocktrace.view.server import ViewServer
from blocktrace.view.session import Session

from .api_support import api, record

THREADS = '''\
import threading


def work(n):
    total = 0
    for i in range(n):
        total += i
    return total


def worker():
    work(30)


t = threading.Thread(target=worker)
t.start()
work(30)
t.join()
'''


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("threads")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BLOCKTRACE_VIEW_CACHE", str(directory / "cache"))
        trace = record(directory, name="threads", program=THREADS)
        model = TraceModel(str(trace))
        assert model.wait(120)
        server = ViewServer(Session([model]))
        server.start()
        yield server.url
        server.shutdown()
        server.server_close()


def test_each_step_names_its_thread_and_the_stack_is_that_threads(base: str) -> None:
    meta = api(base, "meta")["traces"][0]
    assert len(meta["threads"]) == 2
    steps = api(base, "window", **{"from": 0, "count": 5000})["steps"]
    assert len(steps) == meta["steps"]
    workers = [s for s in steps if s["function"] == "worker"]
    assert workers and len({s["thread"] for s in workers}) == 1
    worker_thread = workers[0]["thread"]
    inner = next(s for s in steps if s["function"] == "work" and s["thread"] == worker_thread)
    frames = api(base, "stack", step=inner["step"])["frames"]
    assert [f["function"] for f in frames][:2] == ["work", "worker"]
    assert {f["thread"] for f in frames} == {worker_thread}
    main_work = next(s for s in steps if s["function"] == "work" and s["thread"] != worker_thread)
    frames = api(base, "stack", step=main_work["step"])["frames"]
    assert [f["function"] for f in frames] == ["work", "<module>"]


def test_stepping_over_and_out_stays_on_the_thread(base: str) -> None:
    steps = api(base, "window", **{"from": 0, "count": 5000})["steps"]
    for s in steps:
        if s["function"] != "work":
            continue
        for how in ("over", "out", "back-over"):
            target = api(base, "nav", step=s["step"], how=how)["step"]
            if target is not None:
                assert steps[target]["thread"] == s["thread"], (how, s["step"])
                if how == "out":
                    assert steps[target]["depth"] < s["depth"]
                else:
                    assert steps[target]["depth"] <= s["depth"]
