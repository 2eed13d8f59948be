"""One viewing session: a trace, or two and their diff; the API's dispatch.

:meth:`Session.answer` maps an API name and its query (``t`` picks the trace)
to the model's answer.  The diff of two traces is computed by the differ
(``blocktrace.eip3155.diff_files``, exactly as ``blocktrace diff`` aligns them)
in a background thread.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from blocktrace.view.diff import diff_object
from blocktrace.view.model import BadRequest, Model

__all__ = ["Session"]


_WHOLE = re.compile(r"-?[0-9]{1,30}")
"""A whole number as the page writes one: ASCII digits (``int()`` would also take
``1_000``, ``+5``, `` 7`` and other scripts' digits), and short."""


def _int(query: dict[str, list[str]], name: str, default: int | None = None) -> int:
    values = query.get(name)
    if not values or values[0] == "":
        if default is None:
            raise BadRequest(f"missing {name}=")
        return default
    if not _WHOLE.fullmatch(values[0]):
        shown = values[0] if len(values[0]) <= 40 else values[0][:40] + "..."
        raise BadRequest(f"{name}= is not a whole number: {shown!r}")
    return int(values[0])


def _str(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


class Session:
    """The models being viewed (one, or two in a diff) and their diff."""

    def __init__(self, models: list[Model], *, max_hunks: int = 1000) -> None:
        if len(models) not in (1, 2):
            raise ValueError("a session views one trace or the diff of two")
        self.models = models
        self._diff: dict[str, Any] | None = None
        self._diff_error: str | None = None
        self._diff_done = threading.Event()
        if len(models) == 2:
            self._max_hunks = max_hunks
            threading.Thread(target=self._compute_diff, name="blocktrace-view-diff",
                             daemon=True).start()

    @property
    def mode(self) -> str:
        return "diff" if len(self.models) == 2 else "trace"

    def _compute_diff(self) -> None:
        try:
            a, b = self.models
            a.wait()
            b.wait()
            self._diff = diff_object(a.path, b.path, max_hunks=self._max_hunks,
                                     step_of_line_a=a.step_of_line,
                                     step_of_line_b=b.step_of_line)
        except (ValueError, OSError) as exc:
            self._diff_error = str(exc)
        finally:
            self._diff_done.set()

    def diff(self, wait: float | None = 0) -> dict[str, Any]:
        if self.mode != "diff":
            raise BadRequest("diff: this session views one trace")
        if not self._diff_done.wait(wait):
            return {"status": "pending"}
        if self._diff_error is not None:
            return {"status": "unusable", "error": self._diff_error}
        assert self._diff is not None
        return {"status": "done", **self._diff}

    def model(self, query: dict[str, list[str]]) -> Model:
        t = _int(query, "t", 0)
        if not 0 <= t < len(self.models):
            raise BadRequest(f"no trace t={t} (this session has {len(self.models)})")
        return self.models[t]

    def answer(self, name: str, query: dict[str, list[str]]) -> Any:
        """The JSON answer to API call ``name`` (LookupError: no such call;
        :class:`~blocktrace.view.model.Changed`: a trace it reads changed on
        disk since it was opened).

        ``meta`` and ``verify`` say what was opened (``verify`` says when the
        file changed since); every other answer is checked against the file
        after it was read, so none holds a line written after the check."""
        if name in ("meta", "verify"):
            return self._answer(name, query)
        models = self.models if name == "diff" else [self.model(query)]
        for model in models:
            model.check_unchanged()
        got = self._answer(name, query)
        for model in models:
            model.check_unchanged()
        return got

    def _answer(self, name: str, query: dict[str, list[str]]) -> Any:
        if name == "meta":
            return {"mode": self.mode, "traces": [m.meta() for m in self.models]}
        if name == "diff":
            return self.diff()
        model = self.model(query)
        if name == "verify":
            return model.verify()
        if name == "window":
            start = _int(query, "from", 0)
            count = _int(query, "count", 100)
            return {"from": start, "steps": model.window(start, count)}
        if name == "stack":
            return model.stack(_int(query, "step"))
        if name == "values":
            return model.values(_int(query, "step"))
        if name == "source":
            file = _str(query, "file")
            if not file:
                raise BadRequest("source needs file=")
            return model.source(file)
        if name == "nav":
            step = _int(query, "step")
            how = _str(query, "how") or "next"
            line = _int(query, "line", -1)
            target = model.nav(step, how, _str(query, "file"), None if line < 0 else line,
                               _str(query, "function"))
            return {"from": step, "how": how, "step": target}
        if name == "search":
            return model.search(_str(query, "name") or "", _str(query, "text") or "",
                                _int(query, "limit", 100), _int(query, "from", 0))
        if name == "timeline":
            return model.timeline(_int(query, "from", 0), _int(query, "to"),
                                  _int(query, "buckets", 200))
        raise LookupError(f"no API call {name!r}")
