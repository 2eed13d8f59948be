"""The annotated source view of a recorded trace (``blocktrace lines TRACE``).

tracefunc's per-statement view, computed after the fact from a trace file:
each AST-level statement of the traced source files with how often it ran and,
when the trace was recorded with ``--locals``, sample values of the names it
mentions as they were after it ran.

Instructions are mapped to statements exactly when the source file is still
there and the trace was recorded by the same Python minor version (the file is
compiled again and the code object found by name and first line; bytecode
offsets then match).  Otherwise each instruction is attributed to the
innermost statement on its source line.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import CodeType
from typing import Any

import msgspec

from blocktrace.format import SourceLine, TraceError, TraceReader, read_source
from blocktrace.format.lines import DECODE_ERRORS, SOURCE_PREFIX, decode_members
from blocktrace.views.codemap import code_map, ranges
from blocktrace.views.statements import CodeTable, StatementMap, statements_for_module

__all__ = ["LEGEND", "FileView", "TraceFormatError", "render_json", "render_text", "view_trace"]

MAX_SAMPLES = 10
LEGEND = ("hits: how often each statement ran; 1/4 on a line that holds several: the "
          "statement, then each comprehension (per element) and lambda (per call) in it, "
          "in order; ! never ran; - or blank: no code of its own (a docstring)")


TraceFormatError = TraceError
"""The file is not a blocktrace trace this view can read (the message names the
file and the line): the format's one error, under the name this module had."""


@dataclass
class StatementStats:
    hits: int = 0
    samples: dict[str, list[Any]] = field(default_factory=dict)


@dataclass
class FileView:
    """One source file of the trace: its statements and what each did."""

    path: str
    source: str | None
    smap: StatementMap | None
    stats: dict[int, StatementStats] = field(default_factory=dict)
    exact: bool = False
    functions: set[str] = field(default_factory=set)
    """Qualified names of the traced code objects of this file."""
    spans: dict[str, tuple[int, int]] = field(default_factory=dict)
    """function name -> (first line, last line) from its statements."""
    calls: dict[str, int] = field(default_factory=dict)
    """function name -> how many times it was called (every level records calls)."""
    level: str = "op"
    """The trace's level: at ``line`` each op line is a line start (a hit of its
    statement); at ``call`` no statement is recorded, only calls."""
    no_code: set[int] = field(default_factory=set)
    """Statements that compile to no instruction (a docstring): they cannot run,
    so they are not shown as "never ran".  Known when ``exact``."""


@dataclass
class _Code:
    file: FileView
    name: str
    table: list[int] | None
    """pc // 2 -> statement index, when exact."""
    iteration: dict[int, int] = field(default_factory=dict)
    """pc of an instruction producing a comprehension's element -> the
    comprehension (a generator expression's own code, or a comprehension
    inlined into its function), when exact."""
    function: int = -1
    """The lambda statement this code object is, when exact."""


@dataclass
class _Frame:
    code: _Code | None
    cur: int = -1
    values: dict[str, Any] = field(default_factory=dict)
    values_at: int = -1
    """Op number at which values last arrived.  They are recorded at line starts
    only, so a statement is sampled only when values arrived after it began (or,
    at the frame's return, when it began): a stale sample is worse than none."""
    cur_at: int = 0


def _find_code(root: CodeType, name: str, first_line: int) -> CodeType | None:
    stack = [root]
    while stack:
        code = stack.pop()
        if code.co_qualname == name and code.co_firstlineno == first_line:
            return code
        stack.extend(c for c in code.co_consts if isinstance(c, CodeType))
    return None


class _Viewer:
    def __init__(self, same_python: bool) -> None:
        self.same_python = same_python
        self.sources: dict[str, SourceLine] = {}
        """The trace's source lines: a file is read only as the trace committed to it."""
        self.files: dict[str, FileView] = {}
        self.compiled: dict[str, CodeType | None] = {}
        self.codes: dict[int, _Code] = {}
        self.frames: dict[tuple[int, int], _Frame] = {}
        self.ops = 0
        self.line_level = False
        """Every op line starts a source line (a ``line`` trace): each is a hit."""

    def file(self, path: str) -> FileView:
        view = self.files.get(path)
        if view is None:
            source: str | None = None
            smap: StatementMap | None = None
            text = None if path.startswith("<") else read_source(self.sources.get(path)).text
            if text is not None:
                # as text mode reads it: universal newlines
                source = text.replace("\r\n", "\n").replace("\r", "\n")
                try:
                    smap = statements_for_module(source, path, lambdas=True)
                except (SyntaxError, ValueError, RecursionError, MemoryError):
                    source, smap = None, None
            view = self.files[path] = FileView(path, source, smap)
        return view

    def learn(self, number: int, name: str, path: str, first_line: int) -> None:
        view = self.file(path)
        view.functions.add(name)
        table: CodeTable | None = None
        if view.smap is not None and view.source is not None and self.same_python:
            if path not in self.compiled:
                try:
                    self.compiled[path] = compile(view.source, path, "exec", dont_inherit=True)
                except (SyntaxError, ValueError):
                    self.compiled[path] = None
            root = self.compiled[path]
            code = _find_code(root, name, first_line) if root is not None else None
            if code is not None:
                table = view.smap.table(code)
                view.exact = True
        if table is None:
            self.codes[number] = _Code(view, name, None)
        else:
            self.codes[number] = _Code(view, name, table.statement_at, table.iteration,
                                       table.function)

    def statement(self, code: _Code, pc: int, line: int) -> int:
        if code.table is not None:
            i = pc >> 1
            return code.table[i] if 0 <= i < len(code.table) else -1
        smap = code.file.smap
        if smap is None:
            return -1
        ids = smap._by_line.get(line)
        return ids[0] if ids else -1

    def element(self, code: _Code, sid: int) -> None:
        """One element produced by a comprehension: one hit (its values are not
        sampled: they are recorded at line starts, not per element)."""
        code.file.stats.setdefault(sid, StatementStats()).hits += 1

    def sample(self, frame: _Frame, sid: int, at_return: bool = False) -> None:
        code = frame.code
        if code is None or code.file.smap is None:
            return
        stats = code.file.stats.setdefault(sid, StatementStats())
        stats.hits += 1
        fresh = frame.values_at >= frame.cur_at if at_return else frame.values_at > frame.cur_at
        if stats.hits > MAX_SAMPLES or not fresh:
            return
        for name in code.file.smap.statements[sid].names:
            if name in frame.values:
                stats.samples.setdefault(name, []).append(frame.values[name])


def view_trace(
    path: str, function: str | None = None, progress: Callable[[int], object] | None = None
) -> list[FileView]:
    """Per source file, the statements a recorded trace ran (see the module
    docstring); raises :class:`~blocktrace.format.TraceError`.  A source file
    is read only as the trace's source line committed to it (format version 3;
    older traces show no source).

    ``function``: only what rendering that function needs is exact (its
    statements' hits and samples, its calls), and the trace is read through
    its index where it can be: only the chunks holding the lines of code
    objects in or around the function (:mod:`blocktrace.views.codemap`).

    ``progress``: called now and then with the bytes of the trace read so far
    (:class:`blocktrace.progress.Progress`'s ``update``), on a whole read of a
    plain file (a compressed one's bytes read are not its file's)."""
    reader = TraceReader(path)
    decode = decode_members
    recorded = reader.header.python or ""
    viewer = _Viewer(recorded.split(".")[:2] == platform.python_version().split(".")[:2])
    viewer.line_level = reader.level == "line"
    chosen = None if function is None else _function_lines(reader, viewer, function)
    done = 0
    if chosen is not None or reader.kind != "plain":
        progress = None
    for number, raw in reader.raw_lines(2) if chosen is None else chosen:
        if progress is not None:
            done += len(raw)
            if not number & 4095:
                progress(done)
        if raw.startswith(SOURCE_PREFIX):
            line = reader.decode(number, raw)
            if isinstance(line, SourceLine):
                viewer.sources.setdefault(line.file, line)
            continue
        if not raw.strip():
            continue
        try:
            obj = decode(raw)
        except DECODE_ERRORS:
            reader.decode_object(number, raw)  # (raises the format's error naming the line)
            raise
        _event(viewer, obj, number, path)
    for frame in list(viewer.frames.values()):
        if frame.cur >= 0:
            viewer.sample(frame, frame.cur, at_return=True)
    for file, root in viewer.compiled.items():
        view = viewer.files[file]
        if root is not None and view.exact and view.smap is not None:
            view.no_code = _without_code(view.smap, root)
    views = [v for v in viewer.files.values() if v.smap is not None or v.functions]
    for view in views:
        view.level = reader.level
    return views


def _function_lines(
    reader: TraceReader, viewer: _Viewer, function: str
) -> Iterator[tuple[int, bytes]] | None:
    """The lines ``view_trace`` reads for one function, through the index and
    the trace's code map: every source line and code object learned first (the
    files in the order a whole read finds them), then the chunks holding a line
    of a code object named ``function`` or of the file that defines it, in or
    around its definition.  None when there is no usable index (a whole read)."""
    index = reader.index(build=True)
    if index is None or index.status not in ("sealed", "unsealed"):
        return None
    cmap = code_map(reader)
    if cmap is None:
        return None
    for at in cmap.sources:
        for number, raw in reader.raw_lines(at, 1):
            line = reader.decode(number, raw)
            if isinstance(line, SourceLine):
                viewer.sources.setdefault(line.file, line)
    for number in sorted(cmap.codes):
        viewer.learn(number, *cmap.codes[number])
    spans = {}
    for view in viewer.files.values():
        found = _function_def(view, function)
        if found is not None:
            spans[view.path] = found
    wanted = []
    for number, (name, file, first_line) in cmap.codes.items():
        span = spans.get(file)
        around = span is not None and first_line <= span[1] and (
            first_line >= span[0] or name == "<module>" or span[2].startswith(name + ".")
        )
        if name == function or around:
            wanted.append(number)
    return _chunk_lines(reader, list(ranges(cmap.chunks(wanted), cmap.every, cmap.lines)))


def _chunk_lines(
    reader: TraceReader, runs: list[tuple[int, int]]
) -> Iterator[tuple[int, bytes]]:
    for first, count in runs:
        if first == 1:
            first, count = 2, count - 1  # the header
        yield from reader.raw_lines(first, count)


def _without_code(smap: StatementMap, root: CodeType) -> set[int]:
    """The statements of a file no instruction of any of its code objects
    belongs to."""
    mapped: set[int] = set()
    stack = [root]
    while stack:
        code = stack.pop()
        table = smap.table(code)
        mapped.update(table.statement_at)
        mapped.update(table.iteration.values())
        mapped.update((table.comprehension, table.function))
        stack.extend(c for c in code.co_consts if isinstance(c, CodeType))
    return {st.index for st in smap.statements} - mapped


def _event(viewer: _Viewer, obj: dict[str, Any], number: int, path: str) -> None:
    thread = obj.get("thread", 1)  # absent until a second thread ran: the first (FORMAT.md)
    event = obj.get("event")
    try:
        if "op" in obj and event in (None, "raise", "reraise", "handled"):
            if event is not None:
                return
            key = (thread, int(obj["depth"]))
            frame = viewer.frames.get(key)
            if frame is None:
                frame = viewer.frames[key] = _Frame(viewer.codes.get(int(obj["code"])))
            values = obj.get("locals")
            viewer.ops += 1
            if isinstance(values, dict):
                frame.values.update(values)
                frame.values_at = viewer.ops
            if frame.code is None:
                return
            pc = int(obj["pc"])
            if frame.code.iteration:
                comp = frame.code.iteration.get(pc)
                if comp is not None:
                    viewer.element(frame.code, comp)
            sid = viewer.statement(frame.code, pc, int(obj.get("line", 0)))
            if sid >= 0 and (sid != frame.cur or viewer.line_level):
                if frame.cur >= 0:
                    viewer.sample(frame, frame.cur)
                frame.cur = sid
                frame.cur_at = viewer.ops
        elif event == "call":
            number_ = int(obj["code"])
            if number_ not in viewer.codes:
                viewer.learn(number_, str(obj["name"]), str(obj["file"]), int(obj["firstLine"]))
            key = (thread, int(obj["depth"]))
            called = viewer.codes[number_]
            if obj.get("kind") == "call":
                calls = called.file.calls
                calls[called.name] = calls.get(called.name, 0) + 1
            frame = viewer.frames[key] = _Frame(called)
            if called.function >= 0:  # a lambda: one hit per call, sampled at its return
                frame.cur, frame.cur_at = called.function, viewer.ops
        elif event == "return":
            key = (thread, int(obj["depth"]))
            frame = viewer.frames.pop(key, None)
            if frame is not None and frame.cur >= 0:
                viewer.sample(frame, frame.cur, at_return=True)
    except (KeyError, TypeError, ValueError) as exc:
        raise TraceError(path, number, f"malformed event: {exc!r}") from None


# -- output ---------------------------------------------------------------------------


def _show(value: Any) -> str:
    if isinstance(value, str):
        return value
    return msgspec.json.encode(value).decode()


def _function_span(view: FileView, name: str) -> tuple[int, int] | None:
    """Lines of the ``def`` (or class) whose qualified name ends with ``name``."""
    found = _function_def(view, name)
    return None if found is None else (found[0], found[1])


def _function_def(view: FileView, name: str) -> tuple[int, int, str] | None:
    """``_function_span`` and the definition's qualified name."""
    if view.source is None:
        return None
    import ast

    tree = ast.parse(view.source)
    best: tuple[int, int, str] | None = None

    def walk(node: ast.AST, prefix: str) -> None:
        nonlocal best
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                qual = prefix + child.name
                if best is None and (qual == name or child.name == name):
                    first = min([child.lineno] + [d.lineno for d in child.decorator_list])
                    best = (first, child.end_lineno or child.lineno, qual)
                inner = qual + (".<locals>." if not isinstance(child, ast.ClassDef) else ".")
                walk(child, inner)

    walk(tree, "")
    return best


def _selected(views: list[FileView], function: str | None) -> list[tuple[FileView, int, int]]:
    out = []
    for view in views:
        if view.source is None:
            continue
        n_lines = len(view.source.splitlines())
        if function is None:
            out.append((view, 1, n_lines))
            continue
        span = _function_span(view, function)
        if span is not None:
            out.append((view, *span))
    return out


def render_text(views: list[FileView], function: str | None = None) -> str:
    """The annotated source: hit counts in the margin, one line per statement
    beside its source line, sample values after it."""
    if any(v.level == "call" for v in views):
        return _calls_text(views, function)
    parts: list[str] = []
    for view, first, last in _selected(views, function):
        assert view.source is not None and view.smap is not None
        note = "" if view.exact else "  (line-level: source or Python version differs)"
        parts.append(f"== {view.path}{note}")
        by_line: dict[int, list[int]] = {}
        for st in view.smap.statements:
            if first <= st.line <= last:
                by_line.setdefault(st.line, []).append(st.index)
        src = view.source.splitlines()
        for ln in range(first, last + 1):
            text = src[ln - 1] if ln <= len(src) else ""
            ids = by_line.get(ln, [])
            hits = [view.stats[i].hits if i in view.stats else 0 for i in ids]
            marks = [str(h) if h else "-" if i in view.no_code else "!"
                     for i, h in zip(ids, hits, strict=True)]
            if not ids or marks == ["-"]:
                margin = ""  # no statement, or one without code (a docstring)
            elif len(ids) == 1:
                margin = marks[0]
            else:
                margin = "/".join(marks)
            parts.append(f"{margin:>8} | {text}")
            for i in ids:
                stats = view.stats.get(i)
                if stats is None or not stats.samples:
                    continue
                shown = "  ".join(
                    f"{name}={', '.join(_show(v) for v in values[:5])}"
                    + (" …" if len(values) > 5 else "")
                    for name, values in sorted(stats.samples.items())
                )
                label = view.smap.statements[i].key.splitlines()[0] if len(ids) > 1 else ""
                parts.append(f"{'':>8} |     {f'[{label}] ' if label else ''}{shown}")
    if parts:
        parts.insert(0, LEGEND)
    return "\n".join(parts) + ("\n" if parts else "")


CALL_LEVEL_NOTE = ("a call-level trace records calls, returns and exceptions, not which "
                   "statements ran (record with --level line or op for that): calls per "
                   "function")


def _calls_text(views: list[FileView], function: str | None) -> str:
    """A call-level trace: how often each function was called, per file."""
    parts = [CALL_LEVEL_NOTE]
    for view in views:
        names = [n for n in sorted(view.calls) if function is None or n == function]
        if names:
            parts.append(f"== {view.path}")
            parts.extend(f"{view.calls[n]:>8} | {n}" for n in names)
    return "\n".join(parts) + "\n"


class _JsonCalls(msgspec.Struct):
    file: str
    function: str
    calls: int


class _JsonStatement(msgspec.Struct):
    file: str
    line: int
    statement: str
    hits: int
    samples: dict[str, list[Any]]


def render_json(views: list[FileView], function: str | None = None) -> bytes:
    """One JSON object per statement (file, line, statement, hits, samples), as JSON
    Lines; for a call-level trace one per function (file, function, calls)."""
    encoder = msgspec.json.Encoder()
    out = bytearray()
    if any(v.level == "call" for v in views):  # no statements: one object per function
        for view in views:
            for name in sorted(view.calls):
                if function is None or name == function:
                    encoder.encode_into(_JsonCalls(view.path, name, view.calls[name]), out,
                                        len(out))
                    out += b"\n"
        return bytes(out)
    for view, first, last in _selected(views, function):
        assert view.smap is not None
        for st in view.smap.statements:
            if not first <= st.line <= last:
                continue
            stats = view.stats.get(st.index, StatementStats())
            encoder.encode_into(
                _JsonStatement(view.path, st.line, st.key, stats.hits, stats.samples),
                out, len(out),
            )
            out += b"\n"
    return bytes(out)
