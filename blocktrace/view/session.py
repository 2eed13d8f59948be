"""One viewing session: a trace, or two and their diff; the API's dispatch.

:meth:`Session.answer` maps an API name and its query (``t`` picks the trace)
to the model's answer.  The diff of two traces is computed by the differ
(``blocktrace.eip3155.diff_files``, exactly as ``blocktrace diff`` aligns them)
in a background thread.
"""

from __future__ import annotations

import threading
from typing import Any

from blocktrace.view.diff import diff_object
from blocktrace.view.model import BadRequest, Model

__all__ = ["Session"]


def _int(query: dict[str, list[str]], name: str, default: int | None = None) -> int:
    values = query.get(name)
    if not values or values[0] == "":
        if default is None:
            raise BadRequest(f"missing {name}=")
        return default
    try:
        return int(values[0])
    except ValueError:
        raise BadRequest(f"{name}= is not a whole number: {values[0]!r}") from None


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
        """The JSON answer to API call ``name`` (LookupError: no such call)."""
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
