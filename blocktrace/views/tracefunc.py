"""tracefunc's per-call line view, as a tracer on the engine.

``tracefunc(fn, *args, target_func=None, incl_unhit=False, **kwargs)`` runs
``fn(*args, **kwargs)`` and returns one ``(stack_str, trace_dict)`` per call of
``target_func`` (default ``fn``), at most 10, as a :class:`TraceResults` list
whose ``exc`` holds what ``fn`` raised.  ``trace_dict`` maps each AST-level
statement's source snippet to ``(hit_count, {name: [(type_name, short_repr),
...]})``: values sampled after the statement ran, for the names it mentions, at
most 10 samples per statement.

Only the target's file is in scope, so library code the function calls runs at
full speed; inside that file, code outside the target's source lines has its
instruction events switched off (``DISABLE``) the first time they fire.  Values
are shown without running the program's code: builtin values as their ``repr``,
functions, classes and modules by name, other objects as ``<Type #n>`` --
:class:`LineView` with ``use_repr=True`` opts in to calling ``repr``.
"""

from __future__ import annotations

import inspect
import os
import sys
import sysconfig
from collections.abc import Callable
from types import BuiltinFunctionType, CodeType, FrameType, FunctionType, MethodType, ModuleType
from typing import Any

from blocktrace.events import CallStart, OpStart, Return, TraceEvent
from blocktrace.tracers import VMState
from blocktrace.tracers.render import Renderer
from blocktrace.views.statements import CodeTable, StatementMap, statements_for_function

__all__ = ["LineView", "Sample", "TraceResults", "describe_value", "tracefunc"]

Sample = tuple[str, str]
"""``(type_name, short_repr)``."""

_DISABLE: Any = sys.monitoring.DISABLE
_MAX_REPR = 50


class TraceResults(list[tuple[str, dict[str, tuple[int, dict[str, list[Sample]]]]]]):
    """What :func:`tracefunc` returns: one ``(stack_str, trace_dict)`` per call;
    ``exc`` is the exception ``fn`` raised (``None`` if it returned)."""

    exc: BaseException | None = None


def _truncate(s: str, n: int = _MAX_REPR) -> str:
    return s if len(s) <= n else s[: max(0, n - 3)] + "..."


_EXC_ARGS: Callable[[object], tuple[object, ...]] = BaseException.__dict__["args"].__get__


def _type_attr(t: type, attr: str) -> object:
    try:
        return type.__getattribute__(t, attr)
    except BaseException:  # a metaclass may do anything
        return None


def _type_name(t: type) -> str:
    try:
        name = type.__getattribute__(t, "__name__")
        return name if type(name) is str else "object"
    except BaseException:  # a metaclass may do anything
        return "object"


def describe_value(value: object, renderer: Renderer) -> Sample:
    """``(type_name, short_repr)`` without running the program's code (unless
    the renderer was made with ``use_repr=True``)."""
    t = type(value)
    try:
        if t is FunctionType:
            text = f"<function {value.__qualname__}>"  # type: ignore[attr-defined]
        elif t is BuiltinFunctionType:
            self_ = value.__self__  # type: ignore[attr-defined]
            if self_ is None or type(self_) is ModuleType:
                text = f"<built-in function {value.__name__}>"  # type: ignore[attr-defined]
            else:
                text = f"<built-in method {value.__name__}>"  # type: ignore[attr-defined]
        elif t is MethodType:
            text = f"<bound method {value.__func__.__qualname__}>"  # type: ignore[attr-defined]
        elif t is ModuleType:
            text = f"<module {value.__name__!r}>"  # type: ignore[attr-defined]
        elif isinstance(value, type) and type(t) is type:
            mod = type.__getattribute__(value, "__module__")
            qual = type.__getattribute__(value, "__qualname__")
            text = f"<class '{qual}'>" if mod == "builtins" else f"<class '{mod}.{qual}'>"
        elif issubclass(t, BaseException) and _type_attr(t, "__module__") == "builtins":
            args = _EXC_ARGS(value)
            text = f"{_type_name(t)}({', '.join(renderer.text(a) for a in args)})"
        elif renderer.use_repr:
            text = renderer.text(value)
        else:
            out: list[str] = []
            _repr_prefix(value, out, [0], set(), renderer)
            text = "".join(out)
    except BaseException:  # describing must never raise
        text = f"<{_type_name(t)}>"
    return (_type_name(t), _truncate(text))


_CONTAINERS = (list, tuple, set, frozenset, dict)


def _repr_prefix(
    v: object, out: list[str], size: list[int], active: set[int], renderer: Renderer
) -> None:
    """At least the first ``_MAX_REPR + 1`` characters of ``repr(v)`` (all of it
    when shorter) into ``out``, as tracefunc showed them, without running program
    code: exact builtin containers are walked item by item and stop once the text
    is long enough (however long or deep they are); other values are the
    renderer's text (builtin scalars as their ``repr``, objects ``<Type #n>``).
    ``size[0]`` counts the characters written so far; ``active`` holds the ids of
    the containers being written, shown ``[...]`` when met again, as ``repr``
    shows a list that contains itself."""
    t = type(v)
    if t not in _CONTAINERS:
        if t is str and len(v) > 2 * _MAX_REPR:  # type: ignore[arg-type]
            # repr chooses its quotes by the whole string (double when it holds a
            # single quote and no double one): one quote added to the prefix makes
            # repr choose the same, and is cut off with the closing quote
            double = "'" in v and '"' not in v  # type: ignore[operator]
            text = repr(v[: 2 * _MAX_REPR] + ("'" if double else '"'))[:-2]  # type: ignore[index]
        elif t is int and 128 < v.bit_length() <= 4096:  # type: ignore[attr-defined]
            text = repr(v)  # the renderer says <int N bits>; tracefunc showed the digits
        else:
            text = renderer.text(v)
        out.append(text)
        size[0] += len(text)
        return
    if id(v) in active:
        text = "[...]" if t is list else "{...}" if t is dict else "(...)"
        out.append(text)
        size[0] += len(text)
        return
    if not v:
        text = "set()" if t is set else "frozenset()" if t is frozenset else repr(v)
        out.append(text)
        size[0] += len(text)
        return
    if t is list:
        opener, closer = "[", "]"
    elif t is tuple:
        opener, closer = "(", ",)" if len(v) == 1 else ")"  # type: ignore[arg-type]
    elif t is set or t is dict:
        opener, closer = "{", "}"
    else:
        opener, closer = "frozenset({", "})"
    out.append(opener)
    size[0] += len(opener)
    active.add(id(v))
    try:
        # Iterating an exact builtin container runs no program code.
        items: Any = dict.items(v) if t is dict else t.__iter__(v)  # type: ignore[arg-type]
        for i, item in enumerate(items):
            if size[0] > _MAX_REPR:
                return
            if i:
                out.append(", ")
                size[0] += 2
            if t is dict:
                _repr_prefix(item[0], out, size, active, renderer)
                out.append(": ")
                size[0] += 2
                _repr_prefix(item[1], out, size, active, renderer)
            else:
                _repr_prefix(item, out, size, active, renderer)
    finally:
        active.discard(id(v))
    out.append(closer)
    size[0] += len(closer)


class _Call:
    """One recorded call of the target: per-statement counts and samples."""

    __slots__ = ("counts", "samples", "stack")

    def __init__(self, stack: str, smap: StatementMap) -> None:
        self.stack = stack
        self.counts = [0] * len(smap.statements)
        self.samples: list[dict[str, list[Sample]]] = [
            {name: [] for name in st.names} for st in smap.statements
        ]


class _Frame:
    """Per live in-scope frame: which call it belongs to and its current statement."""

    __slots__ = ("call", "code", "cur", "table")

    def __init__(self, code: CodeType, call: _Call | None, table: CodeTable | None) -> None:
        self.code = code
        self.call = call
        self.table = table
        self.cur = -1


_NOT_FOUND = object()


def _lookup(name: str, frame: FrameType) -> object:
    f_locals = frame.f_locals
    if name in f_locals:
        return f_locals[name]
    if name in frame.f_globals:
        return frame.f_globals[name]
    builtins = frame.f_builtins
    if name in builtins:
        return builtins[name]
    return _NOT_FOUND


class LineView:
    """The tracer behind :func:`tracefunc`; usable with ``blocktrace.trace``.

    ``target`` is the function whose calls are recorded; ``anchor`` the code
    object where shown stacks start (``None``: no stacks).
    """

    may_disable = True

    def __init__(
        self,
        target: Callable[..., Any],
        *,
        anchor: CodeType | None = None,
        max_calls: int = 10,
        max_samples: int = 10,
        use_repr: bool = False,
    ) -> None:
        try:
            lines, first = inspect.getsourcelines(target)
        except (OSError, TypeError) as exc:
            raise ValueError(
                "tracefunc needs a Python function with retrievable source code"
            ) from exc
        code: CodeType = target.__code__
        self.target_code = code
        self.smap = statements_for_function(
            lines, first, code.co_filename, target.__name__, code.co_firstlineno
        )
        self.anchor = anchor
        self.stack_base = os.path.dirname(anchor.co_filename) if anchor is not None else None
        self.max_calls = max_calls
        self.max_samples = max_samples
        self.renderer = Renderer(max_str=_MAX_REPR, max_items=10, max_depth=2, use_repr=use_repr)
        self.calls: list[_Call] = []
        self._tables: dict[int, CodeTable | None] = {}
        self._stacks: dict[int, list[_Frame]] = {}
        self._suspended: dict[int, _Frame] = {}
        self._labels = _path_labels()

    # -- the tracer -------------------------------------------------------

    def __call__(self, vm: VMState, event: TraceEvent, /) -> object:
        if type(event) is OpStart:
            stack = self._stacks.get(vm.thread)
            if not stack:
                return None
            fs = stack[-1]
            if fs.code is not vm.code:
                return None
            table = fs.table
            if table is None:
                return _DISABLE
            call = fs.call
            if call is None:
                return None
            pc = event.pc
            if table.iteration and pc in table.iteration:
                self._snapshot(call, table.iteration[pc], vm)
            sid = table.statement_at[pc >> 1]
            if sid >= 0 and sid != fs.cur:
                prev = fs.cur
                fs.cur = sid
                if prev >= 0:
                    self._snapshot(call, prev, vm)
            return None
        if type(event) is CallStart:
            self._on_call(vm, event)
        elif type(event) is Return:
            self._on_return(vm, event)
        return None

    def _table(self, code: CodeType) -> CodeTable | None:
        key = id(code)
        if key in self._tables:
            return self._tables[key]
        table = self.smap.table(code) if self.smap.covers(code) else None
        self._tables[key] = table
        return table

    def _on_call(self, vm: VMState, event: CallStart) -> None:
        code = vm.code
        stack = self._stacks.setdefault(vm.thread, [])
        if code is None:
            return
        table = self._table(code)
        if table is None:
            stack.append(_Frame(code, None, None))
            return
        if event.kind != "call" and self._suspended:
            frame = vm.frame
            saved = self._suspended.pop(id(frame), None) if frame is not None else None
            if saved is not None:
                stack.append(saved)
                return
        parent = stack[-1].call if stack else None
        if code is self.target_code and event.kind == "call":
            if len(self.calls) >= self.max_calls:
                stack.append(_Frame(code, None, table))
                return
            call = _Call(self._stack_str(vm.frame), self.smap)
            self.calls.append(call)
            stack.append(_Frame(code, call, table))
            return
        stack.append(_Frame(code, parent, table))

    def _on_return(self, vm: VMState, event: Return) -> None:
        stack = self._stacks.get(vm.thread)
        if not stack:
            return
        fs = stack.pop()
        if fs.call is None:
            return
        if event.kind == "yield":
            frame = vm.frame
            if frame is not None:
                self._suspended[id(frame)] = fs
            return
        if fs.cur >= 0:
            self._snapshot(fs.call, fs.cur, vm)
            fs.cur = -1

    def _snapshot(self, call: _Call, sid: int, vm: VMState) -> None:
        n = call.counts[sid] = call.counts[sid] + 1
        if n > self.max_samples:
            return
        wanted = call.samples[sid]
        if not wanted:
            return
        frame = vm.frame
        for name, samples in wanted.items():
            value = _lookup(name, frame) if frame is not None else _NOT_FOUND
            if value is _NOT_FOUND:
                samples.append(("NameError", "<unavailable>"))
            else:
                samples.append(describe_value(value, self.renderer))

    # -- stacks -----------------------------------------------------------

    def _stack_str(self, frame: FrameType | None) -> str:
        if self.anchor is None or frame is None:
            return ""
        frames: list[FrameType] = []
        f: FrameType | None = frame
        while f is not None:
            frames.append(f)
            f = f.f_back
        frames.reverse()
        for i, fr in enumerate(frames):
            if fr.f_code is self.anchor:
                frames = frames[i:]
                break
        else:
            return ""
        return "\n".join(
            f"{fr.f_code.co_qualname} ({self._shorten(fr.f_code.co_filename)}:{fr.f_lineno})"
            for fr in frames
        )

    def _shorten(self, path: str) -> str:
        base = self.stack_base
        if base and path.startswith(base + os.sep):
            return os.path.relpath(path, base)
        if not os.path.isabs(path):
            return path
        for root, label in self._labels:
            if path == root or path.startswith(root + os.sep):
                return label + path[len(root) :]
        return path

    # -- results ----------------------------------------------------------

    def results(self, incl_unhit: bool = False) -> TraceResults:
        out = TraceResults()
        statements = self.smap.statements
        for call in self.calls:
            trace = {
                st.key: (call.counts[st.index], call.samples[st.index])
                for st in statements
                if call.counts[st.index] or incl_unhit
            }
            out.append((call.stack, trace))
        return out


def _path_labels() -> list[tuple[str, str]]:
    """Long, machine-specific prefixes shown as short labels in stacks."""
    labels: list[tuple[str, str]] = []
    venv = os.environ.get("VIRTUAL_ENV")
    if venv:
        labels.append((os.path.realpath(venv), "$VIRTUAL_ENV"))
    home = os.path.expanduser("~")
    if home and home != "~":
        labels.append((os.path.realpath(home), "~"))
    paths = sysconfig.get_paths()
    for key, label in (("purelib", "$SITE_PACKAGES"), ("stdlib", "$PYTHON_STDLIB")):
        if key in paths:
            labels.append((os.path.realpath(paths[key]), label))
    labels.append((os.path.realpath(sys.prefix), "$PYTHON_PREFIX"))
    labels.sort(key=lambda item: len(item[0]), reverse=True)
    return labels


def tracefunc(
    fn: Callable[..., Any],
    /,
    *args: Any,
    target_func: Callable[..., Any] | None = None,
    incl_unhit: bool = False,
    **kwargs: Any,
) -> TraceResults:
    """Run ``fn(*args, **kwargs)`` and return the line view of each call of
    ``target_func`` (default ``fn``); see the module docstring.

    An exception from ``fn`` is caught and kept in the result's ``exc``; the
    calls recorded up to it are still returned.
    """
    from blocktrace import trace

    anchor: CodeType | None = None
    if target_func is not None:
        anchor = getattr(fn, "__code__", None)
    view = LineView(target_func if target_func is not None else fn, anchor=anchor)
    filename = view.target_code.co_filename
    include = [filename] if filename.startswith("<") or os.path.exists(filename) else None
    exc: BaseException | None = None
    with trace(view, include=include):
        try:
            fn(*args, **kwargs)
        except Exception as e:  # a raising fn is the common case
            exc = e
    result = view.results(incl_unhit)
    result.exc = exc
    return result
