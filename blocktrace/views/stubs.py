"""Recorded types as annotations: ``.pyi`` stubs, or a patch adding them to the source.

Works from a :class:`~blocktrace.views.types.TypeTable` and the source files
it names, the way MonkeyType users expect: parameters and return values of
module-level functions and methods, instance members as class attributes,
module-level globals as variables.  Annotations already in the source win over
recorded ones.  Generators get ``Iterator[Y]``, ``*args``/``**kwargs`` their
element types.  The patch is a unified diff (``a/``, ``b/`` paths relative to
a root, for ``git apply`` or ``patch -p1``); it imports other modules' types
under ``if TYPE_CHECKING:`` and quotes annotations that name them unless the
file has ``from __future__ import annotations``.
"""

from __future__ import annotations

import ast
import difflib
import io
import os
import sys
import tokenize
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from blocktrace.views.types import TypeRef, TypeTable, format_union

__all__ = [
    "annotate_source",
    "module_name",
    "stub_files",
    "stub_for_file",
    "types_by_function",
    "unified_patch",
    "write_stubs",
]

_METHOD_DECORATORS = {"staticmethod", "classmethod", "property", "abstractmethod"}


@dataclass
class FunctionTypes:
    """Everything recorded for one function (by qualified name)."""

    params: dict[str, set[TypeRef]] = field(default_factory=dict)
    returns: set[TypeRef] = field(default_factory=set)
    yields: set[TypeRef] = field(default_factory=set)


@dataclass
class FileTypes:
    functions: dict[str, FunctionTypes] = field(default_factory=dict)
    members: dict[str, dict[str, set[TypeRef]]] = field(default_factory=dict)
    globals: dict[str, set[TypeRef]] = field(default_factory=dict)


def types_by_function(table: TypeTable) -> dict[str, FileTypes]:
    """The table regrouped per file and function (lines merged)."""
    out: dict[str, FileTypes] = {}
    for row in table.rows():
        ft = out.setdefault(row.file, FileTypes())
        refs = set(row.types)
        if row.kind == "member" and row.cls is not None:
            ft.members.setdefault(row.cls, {}).setdefault(row.name, set()).update(refs)
            continue
        if row.kind == "global":
            ft.globals.setdefault(row.name, set()).update(refs)
            continue
        fn = ft.functions.setdefault(row.function, FunctionTypes())
        if row.kind == "param":
            fn.params.setdefault(row.name, set()).update(refs)
        elif row.kind == "return":
            fn.returns.update(refs)
        elif row.kind == "yield":
            fn.yields.update(refs)
    return out


def module_name(path: str, roots: Iterable[str] | None = None) -> str:
    """The dotted module name of a source file, from the longest import root
    (``sys.path`` by default) containing it; the file's stem otherwise."""
    real = os.path.realpath(path)
    best = ""
    for root in roots if roots is not None else sys.path:
        r = os.path.realpath(root or os.getcwd())
        if real.startswith(r + os.sep) and len(r) > len(best):
            best = r
    rel = os.path.relpath(real, best) if best else os.path.basename(real)
    parts = rel[: -len(".py")].split(os.sep) if rel.endswith(".py") else rel.split(os.sep)
    if parts and parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


# -- choosing the annotation text ---------------------------------------------------


def _modules_of(refs: Iterable[TypeRef]) -> set[str]:
    """The modules an annotation of ``refs`` names (the file's own included: its
    classes may not exist yet where the annotation is evaluated)."""
    found: set[str] = set()
    for r in refs:
        if r.module is not None and "<locals>" not in r.name:
            found.add(r.module)
        found |= _modules_of(r.args)
    return found


def _clean(
    refs: Iterable[TypeRef], local: str = "", main_classes: frozenset[str] = frozenset()
) -> list[TypeRef]:
    """Types that cannot be named in an annotation (local classes) become
    ``object``; ``__main__``'s classes that this file defines (it ran as the
    program) are this module's."""
    out = []
    for r in refs:
        if "<locals>" in r.name:
            out.append(TypeRef(None, "object"))
        else:
            module = local if r.module == "__main__" and r.name in main_classes else r.module
            out.append(TypeRef(module, r.name, tuple(_clean(r.args, local, main_classes)),
                               r.variadic))
    return out


def _classes_of(tree: ast.Module) -> frozenset[str]:
    """The qualified names of the classes a file defines outside functions."""
    names: set[str] = set()

    def visit(nodes: list[ast.stmt], prefix: str) -> None:
        for node in nodes:
            if isinstance(node, ast.ClassDef):
                names.add(prefix + node.name)
                visit(node.body, prefix + node.name + ".")

    visit(tree.body, "")
    return frozenset(names)


def _elements(refs: Iterable[TypeRef], container: str) -> list[TypeRef]:
    """``*args`` is recorded as a tuple and ``**kwargs`` as a dict: their items."""
    out: list[TypeRef] = []
    for r in refs:
        if r.module is None and r.name == container and r.args:
            item = r.args[-1]
            out.extend(item.args if item.name == "|" else (item,))
        elif r.module is None and r.name == container:
            continue
        else:
            out.append(r)
    return out


@dataclass
class _Spelling:
    """How annotations are spelled in one file: other modules' types qualified,
    and quoted when ``quote`` (a source file whose annotations are evaluated)."""

    local: str
    quote: bool
    imported: set[str] = field(default_factory=set)
    """Modules the file imports itself at top level (no quoting needed)."""
    main_classes: frozenset[str] = frozenset()
    """The file's classes, which are ``__main__``'s where the file ran as the program."""
    modules: set[str] = field(default_factory=set)

    def _finish(self, text: str, found: set[str]) -> str:
        """Quoted where evaluating it could fail: it names a module the file does
        not import, or one of the file's own classes (a method returning its
        class, a class defined further down)."""
        self.modules |= found - {self.local}
        if self.quote and found - self.imported:
            return repr(text)
        return text

    def _text(self, refs: Iterable[TypeRef]) -> tuple[str, set[str]]:
        cleaned = _clean(refs, self.local, self.main_classes)
        return format_union(cleaned, self.local), _modules_of(cleaned)

    def union(self, refs: Iterable[TypeRef]) -> str:
        return self._finish(*self._text(refs))

    def returns(self, fn: FunctionTypes, is_async: bool) -> str | None:
        if fn.yields and not is_async:
            inner, found = self._text(fn.yields)
            return self._finish(f"collections.abc.Iterator[{inner}]", found | {"collections.abc"})
        if fn.returns:
            return self.union(fn.returns)
        return None


# -- stubs ------------------------------------------------------------------------------


def _defaults(args: ast.arguments) -> dict[str, bool]:
    has: dict[str, bool] = {}
    positional = [*args.posonlyargs, *args.args]
    for a, d in zip(positional[len(positional) - len(args.defaults) :], args.defaults,
                    strict=True):
        has[a.arg] = d is not None
    for a, kd in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        has[a.arg] = kd is not None
    return has


_NONE = TypeRef(None, "NoneType")


def _none_defaults(args: ast.arguments) -> set[str]:
    """Parameters whose default is ``None``: their annotation must admit None
    (``x: str = None`` is an implicit Optional that type checkers reject)."""
    positional = [*args.posonlyargs, *args.args]
    pairs = [*zip(positional[len(positional) - len(args.defaults):], args.defaults, strict=True),
             *zip(args.kwonlyargs, args.kw_defaults, strict=True)]
    return {a.arg for a, d in pairs if isinstance(d, ast.Constant) and d.value is None}


def _admitting_none(
    chosen: list[TypeRef], name: str, none_default: Collection[str]
) -> list[TypeRef]:
    if name in none_default and _NONE not in chosen:
        return [*chosen, _NONE]
    return chosen


def _param_text(
    a: ast.arg, refs: set[TypeRef] | None, spell: _Spelling, prefix: str, default: bool,
    container: str | None, skip: bool, none_default: Collection[str] = (),
) -> str:
    text = prefix + a.arg
    if a.annotation is not None:
        text += ": " + ast.unparse(a.annotation)
    elif refs and not skip:
        chosen = _elements(refs, container) if container else list(refs)
        if chosen:
            text += ": " + spell.union(_admitting_none(chosen, a.arg, none_default))
    if default:
        text += " = ..."
    return text


def _signature(
    node: ast.FunctionDef | ast.AsyncFunctionDef, fn: FunctionTypes | None, spell: _Spelling,
    is_method: bool,
) -> str:
    args = node.args
    defaults = _defaults(args)
    none_default = _none_defaults(args)
    params = fn.params if fn is not None else {}
    decorators = {_decorator_name(d) for d in node.decorator_list}
    first_is_self = is_method and "staticmethod" not in decorators
    parts: list[str] = []
    positional = [*args.posonlyargs, *args.args]
    for i, a in enumerate(positional):
        skip = first_is_self and i == 0
        parts.append(_param_text(a, params.get(a.arg), spell, "", defaults.get(a.arg, False),
                                 None, skip, none_default))
        if args.posonlyargs and i == len(args.posonlyargs) - 1:
            parts.append("/")
    if args.vararg is not None:
        parts.append(_param_text(args.vararg, params.get(args.vararg.arg), spell, "*", False,
                                 "tuple", False))
    elif args.kwonlyargs:
        parts.append("*")
    for a in args.kwonlyargs:
        parts.append(_param_text(a, params.get(a.arg), spell, "", defaults.get(a.arg, False),
                                 None, False, none_default))
    if args.kwarg is not None:
        parts.append(_param_text(args.kwarg, params.get(args.kwarg.arg), spell, "**", False,
                                 "dict", False))
    ret: str | None
    if node.returns is not None:
        ret = ast.unparse(node.returns)
    else:
        ret = spell.returns(fn, isinstance(node, ast.AsyncFunctionDef)) if fn else None
    head = "async def" if isinstance(node, ast.AsyncFunctionDef) else "def"
    out = f"{head} {node.name}({', '.join(parts)})"
    if ret is not None:
        out += f" -> {ret}"
    return out + ": ..."


def _decorator_name(d: ast.expr) -> str:
    if isinstance(d, ast.Name):
        return d.id
    if isinstance(d, ast.Attribute):
        return d.attr
    return ""


def stub_for_file(types: FileTypes, source: str, module: str) -> str:
    """The ``.pyi`` text for one source file."""
    tree = ast.parse(source)
    spell = _Spelling(module, quote=False, main_classes=_classes_of(tree))
    body: list[str] = []

    def functions(nodes: list[ast.stmt], prefix: str, indent: str, is_method: bool) -> None:
        for node in nodes:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                fn = types.functions.get(prefix + node.name)
                for d in node.decorator_list:
                    name = _decorator_name(d)
                    if name in _METHOD_DECORATORS or name in ("setter", "deleter"):
                        body.append(f"{indent}@{ast.unparse(d)}")
                body.append(indent + _signature(node, fn, spell, is_method))
            elif isinstance(node, ast.ClassDef):
                classes(node, prefix, indent)

    def classes(node: ast.ClassDef, prefix: str, indent: str) -> None:
        qual = prefix + node.name
        bases = [ast.unparse(b) for b in node.bases] + [ast.unparse(k) for k in node.keywords]
        if not indent:
            body.append("")
        # a dataclass's decorator and declared fields are its signature: kept as written
        body.extend(f"{indent}@{ast.unparse(d)}" for d in node.decorator_list)
        body.append(f"{indent}class {node.name}" + (f"({', '.join(bases)})" if bases else "")
                    + ":")
        start = len(body)
        declared = set()
        for item in node.body:
            if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                declared.add(item.target.id)
                default = " = ..." if item.value is not None else ""
                body.append(f"{indent}    {item.target.id}: {ast.unparse(item.annotation)}"
                            f"{default}")
        for attr, refs in sorted(types.members.get(qual, {}).items()):
            if attr not in declared:
                body.append(f"{indent}    {attr}: {spell.union(refs)}")
        functions(node.body, qual + ".", indent + "    ", True)
        if len(body) == start:
            body.append(f"{indent}    ...")
        if not indent:
            body.append("")

    assigned = _module_assignments(tree)
    for name in assigned:
        refs = types.globals.get(name)
        if refs:
            body.append(f"{name}: {spell.union(refs)}")
    functions(tree.body, "", "", False)
    header = [f"# Stub generated by blocktrace from recorded runtime types of {module}."]
    imports = [f"import {m}" for m in sorted(spell.modules)]
    # the file's own imports: decorators and declared fields kept as written name them
    imports += [text for text in (ast.unparse(n) for n in tree.body
                                  if isinstance(n, (ast.Import, ast.ImportFrom))
                                  and getattr(n, "module", None) != "__future__")
                if text not in imports]
    return "\n".join(header + imports + ([""] if imports else []) + body) + "\n"


def _module_assignments(tree: ast.Module) -> list[str]:
    names: list[str] = []
    for node in tree.body:
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign) and node.annotation is None:
            targets = [node.target]
        for t in targets:
            if isinstance(t, ast.Name) and t.id not in names:
                names.append(t.id)
    return names


def stub_files(
    table: TypeTable, out_dir: str | os.PathLike[str], roots: Iterable[str] | None = None
) -> list[tuple[str, str]]:
    """``(path, text)`` of the ``.pyi`` for each source file of the table, under
    ``out_dir`` (files that no longer exist or do not parse are skipped)."""
    stubs: list[tuple[str, str]] = []
    roots = list(roots) if roots is not None else None
    for file, types in sorted(types_by_function(table).items()):
        source = _read(file)
        if source is None:
            continue
        module = module_name(file, roots)
        try:
            text = stub_for_file(types, source, module)
        except SyntaxError:
            continue
        path = os.path.join(os.fspath(out_dir), *module.split(".")) + ".pyi"
        if os.path.basename(file) == "__init__.py":
            path = os.path.join(os.fspath(out_dir), *module.split("."), "__init__.pyi")
        stubs.append((path, text))
    return stubs


def write_stubs(
    table: TypeTable, out_dir: str | os.PathLike[str], roots: Iterable[str] | None = None,
    stubs: list[tuple[str, str]] | None = None,
) -> list[str]:
    """Write one ``.pyi`` per source file of the table (:func:`stub_files`, or
    ``stubs`` made by it), replacing what is there; returns the paths written."""
    written: list[str] = []
    for path, text in stubs if stubs is not None else stub_files(table, out_dir, roots):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        written.append(path)
    return written


def _read(file: str) -> str | None:
    if file.startswith("<") or not os.path.isfile(file):
        return None
    try:
        with open(file, "rb") as f:
            data = f.read()
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None


# -- patches -----------------------------------------------------------------------------


def _char_col(lines: list[str], line: int, byte_col: int) -> int:
    return len(lines[line - 1].encode("utf-8")[:byte_col].decode("utf-8", errors="replace"))


def _close_paren(tokens: list[tokenize.TokenInfo], node: ast.AST) -> tuple[int, int] | None:
    """Where the parameter list of the ``def`` at ``node`` ends (after its ``)``)."""
    lineno = node.lineno  # type: ignore[attr-defined]
    depth = 0
    seen_def = False
    for tok in tokens:
        if tok.start[0] < lineno:
            continue
        if not seen_def:
            if tok.type == tokenize.NAME and tok.string == "def":
                seen_def = True
            continue
        if tok.type == tokenize.OP and tok.string == "(":
            depth += 1
        elif tok.type == tokenize.OP and tok.string == ")":
            depth -= 1
            if depth == 0:
                return tok.end
    return None


def annotate_source(types: FileTypes, source: str, module: str) -> str:
    """``source`` with recorded types added where it has no annotation."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    future = any(
        isinstance(n, ast.ImportFrom) and n.module == "__future__"
        and any(a.name == "annotations" for a in n.names)
        for n in tree.body
    )
    spell = _Spelling(module, quote=not future, imported=_top_imports(tree),
                      main_classes=_classes_of(tree))
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    edits: list[tuple[int, int, str, int]] = []  # (line, char col, text, chars replaced)

    def visit(nodes: list[ast.stmt], prefix: str, is_method: bool) -> None:
        for node in nodes:
            if isinstance(node, ast.ClassDef):
                visit(node.body, prefix + node.name + ".", True)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                fn = types.functions.get(prefix + node.name)
                if fn is not None:
                    annotate_function(node, fn, is_method)

    def annotate_function(
        node: ast.FunctionDef | ast.AsyncFunctionDef, fn: FunctionTypes, is_method: bool
    ) -> None:
        args = node.args
        none_default = _none_defaults(args)
        decorators = {_decorator_name(d) for d in node.decorator_list}
        first_is_self = is_method and "staticmethod" not in decorators
        positional = [*args.posonlyargs, *args.args]
        plan: list[tuple[ast.arg, str | None]] = [
            (a, None if (first_is_self and i == 0) else "") for i, a in enumerate(positional)
        ]
        if args.vararg is not None:
            plan.append((args.vararg, "tuple"))
        plan += [(a, "") for a in args.kwonlyargs]
        if args.kwarg is not None:
            plan.append((args.kwarg, "dict"))
        for a, container in plan:
            if container is None or a.annotation is not None:
                continue
            refs = fn.params.get(a.arg)
            if not refs:
                continue
            chosen = _elements(refs, container) if container else list(refs)
            if chosen:
                end = a.end_col_offset if a.end_col_offset is not None else a.col_offset
                col = _char_col(lines, a.lineno, end)
                text = ": " + spell.union(_admitting_none(chosen, a.arg, none_default))
                rest = lines[a.lineno - 1][col:]
                if rest.startswith("=") and not rest.startswith("=="):
                    # an annotated parameter's default is spelled ``x: T = 0``
                    edits.append((a.lineno, col, text + " = ", 1))
                else:
                    edits.append((a.lineno, col, text, 0))
        if node.returns is None:
            ret = spell.returns(fn, isinstance(node, ast.AsyncFunctionDef))
            where = _close_paren(tokens, node)
            if ret is not None and where is not None:
                edits.append((where[0], where[1], f" -> {ret}", 0))

    visit(tree.body, "", False)
    if not edits:
        return source
    for line, col, text, replaced in sorted(edits, reverse=True):
        s = lines[line - 1]
        lines[line - 1] = s[:col] + text + s[col + replaced :]
    modules = sorted(m for m in spell.modules if m != module and m not in spell.imported)
    if modules:
        block = ["from typing import TYPE_CHECKING\n", "\n", "if TYPE_CHECKING:\n"]
        block += [f"    import {m}\n" for m in modules]
        at = _import_point(tree)
        block = ["\n", *block] if at else [*block, "\n"]
        lines[at:at] = block
    return "".join(lines)


def _top_imports(tree: ast.Module) -> set[str]:
    """Modules bound by plain top-level ``import a.b`` statements."""
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.asname is None)
    return found


def _import_point(tree: ast.Module) -> int:
    """The line index after the module docstring, ``__future__`` imports and the
    top-level imports that precede other code."""
    at = 0
    for i, node in enumerate(tree.body):
        is_doc = (i == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
                  and isinstance(node.value.value, str))
        if is_doc or isinstance(node, (ast.Import, ast.ImportFrom)):
            at = node.end_lineno or node.lineno
        else:
            break
    return at


def unified_patch(
    table: TypeTable, root: str | os.PathLike[str] | None = None,
    roots: Iterable[str] | None = None,
) -> str:
    """A unified diff adding recorded annotations to every source file of the
    table under ``root`` (default: the current directory)."""
    base = os.path.realpath(os.fspath(root) if root is not None else os.getcwd())
    roots = list(roots) if roots is not None else None
    chunks: list[str] = []
    for file, types in sorted(types_by_function(table).items()):
        real = os.path.realpath(file)
        if not real.startswith(base + os.sep):
            continue
        source = _read(real)
        if source is None:
            continue
        try:
            new = annotate_source(types, source, module_name(real, roots))
        except (SyntaxError, tokenize.TokenError):
            continue
        if new == source:
            continue
        rel = os.path.relpath(real, base).replace(os.sep, "/")
        chunks.extend(
            difflib.unified_diff(
                source.splitlines(keepends=True), new.splitlines(keepends=True),
                f"a/{rel}", f"b/{rel}",
            )
        )
    return "".join(chunks)
