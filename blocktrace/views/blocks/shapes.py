"""The fixed parts of blocks: per source location (``_Site``), per watched
instruction (``_Op``) and per event at a site (``_Shape``: the block template and
its encoded JSON around the values that change), each made once."""

from __future__ import annotations

import linecache
from pathlib import Path
from types import CodeType
from typing import Any

import msgspec

from blocktrace.events import OpStart

__all__ = ["Block", "_Op", "_Shape", "_Site", "_file_parts", "_shape_of"]

Block = dict[str, Any]
_encode = msgspec.json.Encoder().encode


class _Site:
    """What a block needs about one source location, computed once."""

    __slots__ = ("function", "line", "module", "path", "text")

    def __init__(self, code: CodeType, line: int, pathelements: int, ignored: bool) -> None:
        self.function = code.co_name
        self.line = line
        filename = code.co_filename
        self.module, self.path = _file_parts(filename, pathelements)
        self.text = "[OBFUSCATED]" if ignored else linecache.getline(filename, line).strip()


_FILE_PARTS: dict[tuple[str, int], tuple[str, str]] = {}


def _file_parts(filename: str, pathelements: int) -> tuple[str, str]:
    """``Module`` and ``Path`` of a file (the same in every run: kept)."""
    parts = _FILE_PARTS.get((filename, pathelements))
    if parts is None:
        parent = str(Path(filename).parent)
        parts = _FILE_PARTS[(filename, pathelements)] = (
            Path(filename).name, "/".join(parent.split("/")[-pathelements:])
        )
    return parts


class _Op:
    """A watched instruction site, for the run: what its blocks need, found once."""

    __slots__ = ("code", "commands_read", "line", "line_shape", "line_start", "mid_line",
                 "op_name", "opcode_shape", "pc")

    def __init__(self, code: CodeType, event: OpStart, plain_ops: bool) -> None:
        self.code = code
        self.pc = event.pc
        self.line = event.line
        self.op_name = event.op_name
        self.line_start = event.line_start
        self.mid_line = plain_ops and not event.line_start
        """Within a line: when reached going forward in the same frame, it makes
        no block (without _trace_opcodes)."""
        self.line_shape: _Shape | None = None
        self.opcode_shape: _Shape | None = None
        self.commands_read = False
        """The ``#*BTC`` command above its line, if any, is applied."""


_SHAPES: dict[tuple[str, str, str, str, str, int, str, int, tuple[str, str, str]],
              _Shape] = {}


def _shape_of(
    site: _Site, event: str, pc: int, opname: str, line: int, modes: tuple[str, str, str],
) -> _Shape:
    """The ``_Shape`` of these fixed values (made once per process: a shape is
    a function of them alone, and never changed)."""
    key = (site.function, site.text, site.module, site.path, event, pc, opname, line, modes)
    shape = _SHAPES.get(key)
    if shape is None:
        if len(_SHAPES) >= 100_000:
            _SHAPES.clear()
        shape = _SHAPES[key] = _Shape(site, event, pc, opname, line, modes)
    return shape


class _Shape:
    """The blocks of one event at one site: the template (every key in block
    order, the fixed values set) and the encoded JSON around the changing values."""

    __slots__ = ("function", "tail_arg", "tail_end", "tail_null", "template")

    def __init__(
        self, site: _Site, event: str, pc: int, opname: str, line: int,
        modes: tuple[str, str, str],
    ) -> None:
        template: Block = {"DateTime": "", "Function": site.function}
        for name, mode in zip(("Globals", "Builtins", "Locals"), modes, strict=True):
            if mode != "OFF":
                template[name] = None
        template.update({
            "Line Text": site.text, "Event": event, "Arg": None, "Instruction No": pc,
            "Opcode": opname, "Module": site.module, "Path": site.path, "Line No": line,
            "Hash": "",
        })
        self.template = template
        self.function = b'","Function":' + _encode(site.function)
        self.tail_arg = (b',"Line Text":' + _encode(site.text) + b',"Event":' + _encode(event)
                         + b',"Arg":')
        self.tail_end = (b',"Instruction No":' + _encode(pc) + b',"Opcode":' + _encode(opname)
                         + b',"Module":' + _encode(site.module) + b',"Path":'
                         + _encode(site.path) + b',"Line No":' + _encode(line) + b',"Hash":"')
        self.tail_null = self.tail_arg + b"null" + self.tail_end
