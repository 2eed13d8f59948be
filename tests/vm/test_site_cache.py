"""Site tables are built once per code object and index, across runs."""

from __future__ import annotations

import blocktrace
from blocktrace import Recorder
from blocktrace.events import OpStart
from blocktrace.vm import sites


def _work(n: int) -> int:
    return sum(i * i for i in range(n))


def _ops(rec: Recorder) -> list[OpStart]:
    return [e for e in rec.events if type(e) is OpStart]


def test_a_second_run_reuses_the_sites_and_records_the_same() -> None:
    first, second = Recorder(), Recorder()
    with blocktrace.trace(first):
        _work(3)
    with blocktrace.trace(second):
        _work(3)
    # The frame that entered the trace runs other instructions the second time;
    # _work and its generator run the same ones.
    a = [e for e in _ops(first) if e.code != 1]
    b = [e for e in _ops(second) if e.code != 1]
    assert len(a) == len(b) > 10
    assert all(x is y for x, y in zip(a, b, strict=True))  # the very same site objects


def test_another_index_or_a_dead_code_object_is_not_reused() -> None:
    code = compile("x = 1\ny = x + 1\n", "<cache-test>", "exec")
    one = sites.sites_for(code, 7)
    assert sites.sites_for(code, 7) is one
    other = sites.sites_for(code, 8)
    assert other is not one
    assert {s.code for s in other if s is not None} == {8}
    key = id(code)
    assert key in sites.SITE_CACHE
    del code, one, other
    import gc

    gc.collect()
    assert key not in sites.SITE_CACHE  # forgotten with the code object
