"""Source statements as tracefunc sees them, and which instruction belongs to which.

A *statement* here is an AST-level line: every ``ast.stmt`` (a compound
statement by its header only), every ``except`` clause and ``match`` case, and
every comprehension (its own entry, one sample per iteration); for the
annotated source of a whole file (``blocktrace lines``) also every lambda (its
own entry, one hit per call).  ``x = 1; y = 2`` is two statements.  Each has
a key (its source snippet, made unique by trailing spaces as tracefunc did),
the names it mentions, and a span in file coordinates; an instruction belongs
to the smallest span containing the start of its source position (PEP 657), so
the table is computed once per code object and the per-instruction work is one
list index.
"""

from __future__ import annotations

import ast
import dis
import textwrap
from dataclasses import dataclass, field
from types import CodeType
from typing import cast

__all__ = [
    "ITERATION_OPS",
    "CodeTable",
    "Statement",
    "StatementMap",
    "statements_for_function",
    "statements_for_module",
]

COMP_NODES = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
LINE_NODES = (ast.stmt, ast.ExceptHandler, ast.match_case, *COMP_NODES)
COMP_CODE_NAMES = frozenset({"<listcomp>", "<setcomp>", "<dictcomp>", "<genexpr>"})
ITERATION_OPS = frozenset({"LIST_APPEND", "SET_ADD", "MAP_ADD", "YIELD_VALUE"})
"""Instructions that produce one comprehension element: one sample each."""
_CO_NEWLOCALS = 0x2  # inspect.CO_NEWLOCALS: a function's code, not a class body or a module

_SCOPE_NODES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


class _Names(ast.NodeVisitor):
    """Names one statement mentions: not those of nested statements (their own
    entries), not inside lambdas (own scope), and inside a comprehension only
    when the comprehension is the statement itself."""

    def __init__(self, root: ast.AST) -> None:
        self.root = root
        self.names: set[str] = set()

    def visit_Name(self, node: ast.Name) -> None:
        self.names.add(node.id)

    def visit_Global(self, node: ast.Global) -> None:
        self.names.update(node.names)

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        self.names.update(node.names)

    def _named(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        if node is self.root:
            self.names.add(node.name)
            self.generic_visit(node)

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _named

    def visit_Lambda(self, node: ast.Lambda) -> None:
        if node is self.root:
            a = node.args
            self.names.update(arg.arg for arg in (*a.posonlyargs, *a.args, *a.kwonlyargs))
            self.names.update(arg.arg for arg in (a.vararg, a.kwarg) if arg is not None)
            self.visit(node.body)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node is self.root:
            if node.name:
                self.names.add(node.name)
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        if node is self.root:
            self.names.update(a.asname or a.name.split(".")[0] for a in node.names)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node is self.root:
            self.names.update(a.asname or a.name for a in node.names)

    def generic_visit(self, node: ast.AST) -> None:
        if node is not self.root and isinstance(node, (*LINE_NODES, ast.Lambda)):
            return
        super().generic_visit(node)


@dataclass(slots=True)
class Statement:
    """One AST-level line: its key, the names it mentions, its span."""

    index: int
    key: str
    names: tuple[str, ...]
    line: int
    """First source line (file coordinates)."""
    col: int
    end_line: int
    end_col: int
    is_comprehension: bool
    is_lambda: bool = False

    def contains(self, line: int, col: int) -> bool:
        if line < self.line or line > self.end_line:
            return False
        if line == self.line and col < self.col:
            return False
        return not (line == self.end_line and col >= self.end_col)


@dataclass(slots=True)
class CodeTable:
    """Per code object: instruction offset // 2 -> statement index (-1: none).

    ``iteration`` maps the offsets of element-producing instructions to the
    comprehension they produce for; ``comprehension`` is the comprehension a
    ``<genexpr>``-style code object implements (-1 otherwise).
    """

    statement_at: list[int]
    iteration: dict[int, int]
    comprehension: int
    code: CodeType
    function: int = -1
    """The lambda statement a ``<lambda>`` code object implements (-1 otherwise;
    only in maps made with lambda entries)."""


@dataclass(slots=True)
class StatementMap:
    """All statements of one source region, and per-code tables on demand."""

    filename: str
    first_line: int
    last_line: int
    statements: list[Statement]
    _by_line: dict[int, list[int]] = field(default_factory=dict)
    _comp_by_line: dict[int, list[int]] = field(default_factory=dict)
    _lambda_by_line: dict[int, list[int]] = field(default_factory=dict)
    _tables: dict[int, CodeTable] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for st in self.statements:
            target = (self._comp_by_line if st.is_comprehension
                      else self._lambda_by_line if st.is_lambda else self._by_line)
            for ln in range(st.line, st.end_line + 1):
                target.setdefault(ln, []).append(st.index)
        for ids in (*self._by_line.values(), *self._comp_by_line.values(),
                    *self._lambda_by_line.values()):
            ids.sort(key=lambda i: self._size(self.statements[i]))

    @staticmethod
    def _size(st: Statement) -> tuple[int, int]:
        return (st.end_line - st.line, st.end_col - st.col)

    def covers(self, code: CodeType) -> bool:
        """Whether ``code`` is defined inside this region (same file, within its lines)."""
        return (
            code.co_filename == self.filename
            and self.first_line <= code.co_firstlineno <= self.last_line
        )

    def statement_at(self, line: int, col: int) -> int:
        for i in self._by_line.get(line, ()):
            if self.statements[i].contains(line, col):
                return i
        return -1

    def comprehension_at(self, line: int, col: int) -> int:
        for i in self._comp_by_line.get(line, ()):
            if self.statements[i].contains(line, col):
                return i
        return -1

    def lambda_at(self, line: int, col: int) -> int:
        for i in self._lambda_by_line.get(line, ()):
            if self.statements[i].contains(line, col):
                return i
        return -1

    def table(self, code: CodeType) -> CodeTable:
        """The table for ``code``, built once (keyed by ``id``; the table keeps
        the code object alive so the id cannot be reused)."""
        t = self._tables.get(id(code))
        if t is None:
            t = self._tables[id(code)] = self._build(code)
        return t

    def _build(self, code: CodeType) -> CodeTable:
        at = [-1] * (len(code.co_code) // 2 + 1)
        iteration: dict[int, int] = {}
        comp = -1
        is_comp_code = code.co_name in COMP_CODE_NAMES
        if code.co_name == "<lambda>":
            # a lambda runs inside its statement, which it must not count again;
            # it is an entry of its own where the map has lambda entries
            function = -1
            for ins in dis.get_instructions(code):
                pos = ins.positions
                if pos is not None and pos.lineno is not None and pos.col_offset is not None:
                    function = self.lambda_at(pos.lineno, pos.col_offset)
                    if function >= 0:
                        break
            return CodeTable(at, iteration, comp, code, function)
        # a class body starts by setting __module__, __qualname__ ... at a position of
        # no width on its first line: not a run of the class statement (nor of the
        # function around it), which the frame that defines the class counts
        class_body = not code.co_flags & _CO_NEWLOCALS and code.co_name != "<module>"
        for ins in dis.get_instructions(code):
            pos = ins.positions
            if pos is None or pos.lineno is None or pos.col_offset is None:
                continue
            ln, col = pos.lineno, pos.col_offset
            if class_body and col == 0 and pos.end_col_offset == 0 and pos.end_lineno == ln:
                continue
            if is_comp_code:
                if comp < 0:
                    comp = self.comprehension_at(ln, col)
                continue
            at[ins.offset // 2] = self.statement_at(ln, col)
            if ins.opname in ITERATION_OPS:
                c = self.comprehension_at(ln, col)
                if c >= 0:
                    iteration[ins.offset] = c
        if is_comp_code and comp >= 0:
            for ins in dis.get_instructions(code):
                if ins.opname in ITERATION_OPS:
                    iteration[ins.offset] = comp
        return CodeTable(at, iteration, comp, code)


def _header_end(node: ast.AST) -> tuple[int, int]:
    """Compound statements end where their first body statement (or case) starts."""
    if not isinstance(node, COMP_NODES):
        for attr in ("body", "cases"):
            inner = getattr(node, attr, None)
            if isinstance(inner, list) and inner:
                # a decorated def or class starts at its first decorator
                first = min([inner[0], *getattr(inner[0], "decorator_list", ())],
                            key=lambda n: (n.lineno, n.col_offset))
                line, col = first.lineno, first.col_offset
                if first is not inner[0]:  # the decorator's "@" comes before its expression
                    col = max(col - 1, 0)
                return line, col
    line = getattr(node, "end_lineno", None) or getattr(node, "lineno", 1)
    col = getattr(node, "end_col_offset", None) or getattr(node, "col_offset", 0)
    return cast(int, line), cast(int, col)


def _collect(root: ast.AST, include_root: bool, lambdas: bool = False) -> list[ast.AST]:
    nodes: list[ast.AST] = []
    kinds = (*LINE_NODES, ast.Lambda) if lambdas else LINE_NODES

    def walk(n: ast.AST) -> None:
        for child in ast.iter_child_nodes(n):
            if isinstance(child, kinds):
                nodes.append(child)
            walk(child)

    if include_root and isinstance(root, LINE_NODES):
        nodes.append(root)
    walk(root)
    return nodes


def _build_map(
    source: str,
    tree: ast.AST,
    root: ast.AST,
    filename: str,
    line_shift: int,
    col_shift: int,
    first_line: int,
    last_line: int,
    lambdas: bool = False,
) -> StatementMap:
    """``line_shift``/``col_shift`` turn parsed coordinates into file coordinates
    (a function's source is parsed dedented, on its own); ``lambdas``: lambdas
    are entries of their own."""
    raw = [ln.encode() for ln in source.splitlines(keepends=True)]
    starts = [0]
    for ln in raw:
        starts.append(starts[-1] + len(ln))
    blob = b"".join(raw)

    def index(line: int, col: int) -> int:
        if line < 1:
            return 0
        if line > len(raw):
            return len(blob)
        return min(starts[line - 1] + max(col, 0), len(blob))

    statements: list[Statement] = []
    used: set[str] = set()
    for node in _collect(root, include_root=False, lambdas=lambdas):
        lineno: int = node.lineno  # type: ignore[attr-defined]
        col: int = node.col_offset  # type: ignore[attr-defined]
        end_line, end_col = _header_end(node)
        seg = blob[index(lineno, col) : index(end_line, end_col)].decode(errors="replace").strip()
        if not seg:
            full_end = (getattr(node, "end_lineno", lineno), getattr(node, "end_col_offset", col))
            seg = blob[index(lineno, col) : index(*full_end)].decode(errors="replace").strip()
        if not seg:
            seg = ast.unparse(node).strip()
        if not seg:
            continue
        if isinstance(node, ast.GeneratorExp) and not (seg.startswith("(") and seg.endswith(")")):
            seg = f"({seg})"
        key = seg
        while key in used:
            key += " "
        used.add(key)
        names = _Names(node)
        names.visit(node)
        statements.append(
            Statement(
                index=len(statements),
                key=key,
                names=tuple(sorted(names.names)),
                line=lineno + line_shift,
                col=col + col_shift,
                end_line=end_line + line_shift,
                end_col=end_col + col_shift,
                is_comprehension=isinstance(node, COMP_NODES),
                is_lambda=isinstance(node, ast.Lambda),
            )
        )
    del tree
    return StatementMap(filename, first_line, last_line, statements)


def statements_for_function(
    lines: list[str], first_line: int, filename: str, name: str, def_line: int
) -> StatementMap:
    """The statements inside one function whose source is ``lines`` (as
    ``inspect.getsourcelines`` returns them, starting at ``first_line``)."""
    source = textwrap.dedent("".join(lines))
    nonblank = [ln for ln in lines if ln.strip()]
    indent = min((len(ln) - len(ln.lstrip(" \t")) for ln in nonblank), default=0)
    tree = ast.parse(source)
    want = def_line - first_line + 1
    root: ast.AST | None = None
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            if node.lineno == want:
                root = node
                break
            root = root or node
    if root is None:
        raise ValueError(f"could not find the definition of {name!r} in its source")
    shift = first_line - 1
    return _build_map(
        source,
        tree,
        root,
        filename,
        shift,
        indent,
        root.lineno + shift,  # type: ignore[attr-defined]
        (root.end_lineno or root.lineno) + shift,  # type: ignore[attr-defined]
    )


def statements_for_module(source: str, filename: str, lambdas: bool = False) -> StatementMap:
    """Every statement of a whole source file (module level and all bodies);
    ``lambdas``: every lambda too, as an entry of its own."""
    tree = ast.parse(source, filename)
    n_lines = len(source.splitlines()) or 1
    return _build_map(source, tree, tree, filename, 0, 0, 1, n_lines, lambdas)
