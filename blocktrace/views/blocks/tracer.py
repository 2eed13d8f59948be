"""``BlockTrace``: the blocktrace 0.0.16 tracer on the engine (see the package)."""

from __future__ import annotations

import hashlib
import linecache
import os
import shutil
import sys
import tempfile
import weakref
from collections.abc import Callable
from datetime import datetime
from time import time_ns as _time_ns
from types import CodeType, FrameType
from typing import IO, Any, cast

import msgspec

from blocktrace.events import CallStart, OpException, OpStart, Return, Stop, TraceEvent
from blocktrace.tracers import Tracer, VMState
from blocktrace.views.blocks.bytecode import _frame_at, _line_at, _opname, _watched_cached
from blocktrace.views.blocks.changes import _dict_changes, _list_changes
from blocktrace.views.blocks.replay import replay
from blocktrace.views.blocks.shapes import Block, _file_parts, _Op, _Shape, _shape_of, _Site
from blocktrace.views.blocks.values import ValueViews, epoch, plain_values
from blocktrace.views.blocks.verify import ChainFailure, verify_chain
from blocktrace.vm.stepper import DISABLE

__all__ = ["BlockTrace"]

_MODES = ("ON", "OFF", "CHANGES")
_DATE = "%d/%m/%Y, %H:%M:%S.%f"
_encode = msgspec.json.Encoder().encode


def _mode(name: str, value: str) -> str:
    mode = str(value).upper()
    if mode not in _MODES:
        raise ValueError(f"{name} must be 'on', 'off' or 'changes', not {value!r}")
    return mode


class BlockTrace:
    """The 0.0.16 ``BlockTrace`` (same constructor, methods and block shape).

    ``_hash``: any algorithm in ``hashlib.algorithms_guaranteed`` (default
    ``sha1``, as before).  ``_globals``/``_locals``/``_builtins``: ``"on"``,
    ``"off"`` or ``"changes"`` (case-insensitive).  ``_pathelements``: how many
    trailing directories ``Path`` shows (0: all).  ``_trace_lines`` /
    ``_trace_opcodes``: blocks per line / per instruction.  ``_new_hash``: a
    fresh hash object per block (False: one running hash).  ``_each_block_hook(n,
    block)`` is called after each block (an exception from it is kept in
    ``hook_errors``, never raised into the program).  Inline ``#*BTC
    IGNORENEXT`` / ``IGNOREGLOBAL name`` / ``IGNORELOCAL name`` comments work as
    before.
    """

    # slots: a block reads and writes a few dozen of these (an instance dict this
    # size would be a hash lookup each time); __dict__ keeps other attributes
    # settable, as they were
    __slots__ = (
        "__dict__", "__weakref__", "_built_piece", "_builtins", "_chain", "_chain_locals", "_ctor",
        "_cur", "_deepdiff", "_each_block_hook", "_frames", "_gas_used", "_genesis", "_globals",
        "_globals_seen", "_hash", "_hash_obj", "_last_hash", "_last_hash_bytes", "_lline",
        "_locals", "_lpc", "_new_hash", "_ops", "_pathelements", "_plain_locals", "_plain_ops",
        "_previous_tracer", "_raised", "_rec_at", "_record", "_replayed", "_running",
        "_second_ends",
        "_second_starts", "_second_text", "_shake", "_shapes", "_sites", "_skip_key", "_skipped",
        "_spool", "_spool_closer", "_trace_lines", "_trace_opcodes", "_up", "_views",
        "_wants_frame", "_watch", "block", "built", "globs", "hook_errors", "ignorecode",
        "ignoreglobal", "ignorelocal", "iter", "locals", "may_disable",
    )

    def __init__(
        self,
        _genesis: str = "Genesis",
        *,
        _hash: str = "sha1",
        _globals: str = "On",
        _locals: str = "On",
        _builtins: str = "Off",
        _pathelements: int = 0,
        _trace_lines: bool = True,
        _trace_opcodes: bool = False,
        _new_hash: bool = True,
        _each_block_hook: Callable[[int, Block], object] | None = None,
        **_deepdiff: Any,
    ) -> None:
        self._hash = _hash
        self._ctor = self.hashlibwrapper(_hash)
        self._shake = _hash.startswith("shake_")
        self._globals = _mode("_globals", _globals)
        self._locals = _mode("_locals", _locals)
        self._builtins = _mode("_builtins", _builtins)
        self._pathelements = int(_pathelements)
        self._trace_lines = bool(_trace_lines)
        self._trace_opcodes = bool(_trace_opcodes)
        self._new_hash = bool(_new_hash)
        self._each_block_hook = _each_block_hook
        self._deepdiff = _deepdiff
        self._genesis = str(_genesis)
        self.iter = 0
        self.block: dict[int, Block] = {}
        self.hook_errors: list[BaseException] = []
        self.globs: dict[str, Any] = {}
        self.locals: dict[str, Any] = {}
        self.built: list[str] = []
        self.ignorecode: dict[str, list[int]] = {}
        self.ignoreglobal: list[str] = []
        self.ignorelocal: list[str] = []
        first: Block = {"DateTime": datetime.now().strftime(_DATE)}
        if self._globals != "OFF":
            first["Globals"] = {}
        if self._builtins != "OFF":
            first["Builtins"] = []
        if self._locals != "OFF":
            first["Locals"] = {}
        first["sample"] = self._genesis
        self._hash_obj: Any = self._new()
        self._hash_obj.update(_encode(first))
        first["Hash"] = self._last_hash = self._hex(self._hash_obj)
        self._last_hash_bytes = self._last_hash.encode()
        self.block[0] = first
        self._sites: dict[tuple[int, int], _Site] = {}
        self._frames: dict[int, tuple[int, int]] = {}
        # per frame (key), where its exception was last raised or re-raised: the
        # line, offset and instruction settrace's "return" of an unwind reports
        self._raised: dict[int, tuple[int, int, str]] = {}
        self._skip_key = -1
        """The frame that called start() (thread << 20 | depth): it makes no blocks."""
        self._previous_tracer: Tracer | None = None
        self._running = False
        self._chain_locals = self._locals != "OFF"
        self._wants_frame = "ON" in (self._locals, self._globals, self._builtins) or (
            "CHANGES" in (self._locals, self._globals, self._builtins)
        )
        self._plain_locals = (
            self._locals == "ON" and self._builtins == "OFF" and self._globals != "CHANGES"
            and self._new_hash and not self._shake
        )
        """The configurations whose line blocks are made inline in ``__call__``."""
        self._second_starts = 0
        self._second_ends = 0
        self._second_text = ""
        self._ops: dict[int, _Op] = {}
        """The watched instruction sites met in this run, by ``id`` of their
        ``OpStart`` (the stepper keeps one per site alive for the run)."""
        self._shapes: dict[tuple[int, int, str, int, str], _Shape] = {}
        self._built_piece = b"[]"
        self._plain_ops = not self._trace_opcodes
        self.may_disable = self._plain_ops
        """Without ``_trace_opcodes`` the sites that cannot make a block are
        turned off (``sys.monitoring.DISABLE``) until the run stops."""
        self._watch: dict[int, frozenset[int]] = {}
        self._skipped = 0
        """Steps of instructions turned off on their first run (the stepper has
        charged them gas): the record counts only the watched ones."""
        self._views = ValueViews()
        self._globals_seen = self._views.globals_seen  # read on the inline path
        self._record: list[Any] = []
        """OpStart alone when in the same frame as the entry before (gas is one
        less than there), else (event, gas, depth, thread, rendered locals)."""
        self._rec_at = -1
        self._cur = -1
        """(thread << 20 | depth) of the frame of the last instruction, whose
        pc and line are in _lpc and _lline (other frames' in _frames)."""
        self._lpc = -1
        self._lline = 0
        self._gas_used = 0
        self._spool: IO[bytes] | None = None
        self._spool_closer: weakref.finalize[Any, Any] | None = None
        self._chain: Any = None
        self._replayed = False
        self._up = 1

    # -- hashing (the 0.0.16 helpers, kept) ------------------------------------

    def hashlibwrapper(self, _hash: str) -> Callable[..., Any]:
        """The hashlib constructor for ``_hash``; ``LookupError`` if not guaranteed."""
        if _hash not in hashlib.algorithms_guaranteed:
            raise LookupError(_hash + " is not a supported algorithm")
        return cast(Callable[..., Any], getattr(hashlib, _hash))

    def _new(self) -> Any:
        return self._ctor()

    @property
    def hash(self) -> Any:
        """The hash object of the last block (0.0.16's attribute); set to None,
        it is made again from the last block when next read."""
        if self._hash_obj is None:
            last = self.block[self.iter]
            copy = dict(last)
            copy["Hash"] = self.block[self.iter - 1]["Hash"]
            self._hash_obj = self._new()
            self._hash_obj.update(_encode(copy))
        return self._hash_obj

    @hash.setter
    def hash(self, value: Any) -> None:
        self._hash_obj = value

    def _hex(self, h: Any) -> str:
        if self._shake:
            return cast(str, h.hexdigest(20))
        return cast(str, h.hexdigest())

    def verifyblock(self, _block: Block, _previous_hash: str) -> bool:
        """Whether one block's hash matches its content and the previous hash
        (only meaningful with ``_new_hash=True``)."""
        copy = dict(_block)
        stored = copy.get("Hash")
        copy["Hash"] = _previous_hash
        h = self._new()
        h.update(_encode(copy))
        return stored == self._hex(h)

    def verifychain(self, _block: dict[int, Block] | None = None) -> bool | ChainFailure:
        """Recompute every hash from block 0 on: ``True``, or a falsy
        :class:`ChainFailure` saying which block failed and why."""
        return verify_chain(self.block if _block is None else _block, self._new, self._hex,
                            self._new_hash)

    # -- running ------------------------------------------------------------------

    def start(self) -> None:
        """Start tracing the frames that start from here on."""
        import blocktrace
        from blocktrace.tracers.chain import ChainTracer

        if self._running:
            raise RuntimeError("this BlockTrace is already running")
        self._record = []
        self._rec_at = -1
        self._cur = -1
        self._frames.clear()
        self._raised.clear()
        self._skip_key = -1
        self._replayed = False
        self._watch.clear()
        self._ops.clear()
        self._shapes.clear()
        self._sites.clear()
        # renderings by id are the run's renderer's (its object numbers are per run)
        self._views.forget()
        self._skipped = 0
        if self._spool_closer is not None:
            self._spool_closer()  # the last run's spool
        self._spool = tempfile.TemporaryFile()  # noqa: SIM115 - kept until save()
        # closed when this object goes away, also when the garbage collector takes it
        # in a cycle: a finalizer's callback runs before the file could be finalized
        # (unclosed, with a ResourceWarning) as garbage along with it
        self._spool_closer = weakref.finalize(self, self._spool.close)
        # the header (start time, argv) is written now; the events only by save()
        self._chain = ChainTracer(
            self._spool, genesis=self._genesis,
            locals=cast(Any, self._locals.lower()) if self._chain_locals else "off",
        )
        self._previous_tracer = blocktrace.set_tracer(self)
        self._running = True
        try:
            blocktrace.start(stacklevel=2)
        except BaseException:
            blocktrace.set_tracer(self._previous_tracer)
            self._running = False
            raise

    def stop(self) -> None:
        """Stop tracing."""
        import blocktrace

        if not self._running:
            return
        try:
            blocktrace.stop()
        finally:
            # the sites this run turned off are off for every tool until restarted
            sys.monitoring.restart_events()
        if self._previous_tracer is not None:
            blocktrace.set_tracer(self._previous_tracer)
        self._previous_tracer = None
        self._running = False

    def save(self, path: str | os.PathLike[str]) -> str:
        """Write the last run (``start()`` to ``stop()``: each ``start()`` begins a
        new trace, while the blocks go on) as a standard blocktrace trace
        (docs/FORMAT.md: the watched instructions, with locals when ``_locals``
        is on) that ``blocktrace verify`` accepts, overwriting ``path``; returns
        its sealed head.

        The run is kept as a compact record (events, gas, depth, rendered
        values) and written here by the standard ``ChainTracer``, so a run that
        is never saved does not pay for it.  The header (start time, argv) is
        the run's; the summary's ``time`` runs until the first ``save()``.
        """
        if self._running:
            raise RuntimeError("stop() the run before saving it")
        if self._chain is None or self._spool is None:
            raise RuntimeError("nothing to save: start() and stop() a run first")
        if not self._replayed:
            replay(self._record, self._chain, self._gas_used)
            self._chain.close()
            self._replayed = True
            self._record = []
        self._spool.seek(0)
        with open(path, "wb") as out:
            shutil.copyfileobj(self._spool, out)
        return cast(str, self._chain.head)

    # -- the tracer ---------------------------------------------------------------

    def __call__(self, vm: VMState, event: TraceEvent, /) -> object:
        if type(event) is not OpStart:
            return self._on_other(vm, event)
        op = self._ops.get(id(event))
        if op is None:
            op = self._learn_op(vm, event)
            if op is None:
                # Without _trace_opcodes only the instructions that can make a
                # "line" block are watched (_watched); every other site is turned
                # off for the rest of the run, and its first, charged step is
                # given back.
                self._skipped += 1
                return DISABLE
        depth = vm.depth
        key = (vm.thread << 20) | depth
        pc = op.pc
        line = op.line
        if key == self._cur:  # same frame as the instruction before
            last_pc = self._lpc
            last_line = self._lline
            if op.mid_line and key == self._rec_at and pc > last_pc and line == last_line:
                # most watched instructions: same line, going forward -- only recorded
                self._lpc = pc
                self._record.append(event)
                return None
        else:
            if self._cur >= 0:
                self._frames[self._cur] = (self._lpc, self._lline)
            last_pc, last_line = self._frames.pop(key, (-1, 0))
            self._cur = key
        self._lpc = pc
        self._lline = line
        frame: FrameType | None = None
        local: dict[str, Any] | None = None
        if op.line_start and self._chain_locals:
            # locals are rendered once, for the block and for the standard trace
            try:
                # the frame is this many above: 1 when the C hook calls the tracer
                frame = sys._getframe(self._up)
            except ValueError:
                frame = None
            if frame is None or frame.f_code is not op.code:
                frame = self._find_frame(op.code, vm)
            f_locals = frame.f_locals if frame is not None else {}
            if not op.commands_read and line > 0 and key != self._skip_key:
                # a #*BTC command above this line applies before its values are
                # shown (in its first block too, as in 0.0.16): read it now
                op.commands_read = True
                if (id(op.code), line) not in self._sites:
                    self._site(op.code, line)
            if plain_values is None or self.ignorelocal:
                local, values = self._views.values(f_locals, vm.renderer.render, self.ignorelocal)
            else:
                local = plain_values(f_locals)  # numbers only: one dict for both views
                if local is None:
                    local, values = self._views.values(
                        f_locals, vm.renderer.render, self.ignorelocal
                    )
                else:
                    values = local
            if key == self._rec_at:
                self._record.append((event, values))  # same frame: gas one less
            else:
                self._record.append((event, vm.gas + self._skipped, depth, vm.thread, values))
                self._rec_at = key
        elif key == self._rec_at:
            # the common case: same frame as the entry before, gas one less
            self._record.append(event)
        else:
            self._record.append((event, vm.gas + self._skipped, depth, vm.thread, None))
            self._rec_at = key
        if line <= 0 or key == self._skip_key:
            return None
        # settrace's "line": a new line, or a jump back (a loop on one line)
        if self._trace_lines and (line != last_line or pc <= last_pc):
            shape = op.line_shape
            if shape is None:
                shape = op.line_shape = self._shape(op.code, "line", pc, op.op_name, line)
            if local is None or not self._plain_locals:
                self._emit_block(vm, op.code, shape, None, frame, local)
            else:
                # _emit_block for the common case (locals "on", module globals "on"
                # or "off", builtins "off", a fresh hash per block), inline
                ns = _time_ns()
                if ns >= self._second_ends:
                    self._new_second(ns)
                now = self._second_text + "%06d" % ((ns - self._second_starts) // 1000)  # noqa: UP031
                block = shape.template.copy()
                block["DateTime"] = now
                block["Locals"] = self.locals = local
                if self._globals == "ON":
                    globs = frame.f_globals if frame is not None else {}
                    seen = self._globals_seen.get(id(globs))
                    if (seen is not None and seen.version is not None and not seen.volatile
                            and epoch() == seen.version
                            and seen.hidden == len(self.ignoreglobal)):
                        shown = seen.shown
                        piece = seen.encoded
                    else:
                        shown, piece = self._views.module_values(
                            globs, vm.renderer.render, self.ignoreglobal
                        )
                    block["Globals"] = self.globs = shown
                    member = b',"Globals":'
                else:
                    member = piece = b""
                h = self._hash_obj = self._ctor(b"".join((
                    b'{"DateTime":"', now.encode(), shape.function, member, piece,
                    b',"Locals":', _encode(local), shape.tail_null,
                    self._last_hash_bytes, b'"}')))
                digest = h.hexdigest()
                self._last_hash_bytes = digest.encode()
                block["Hash"] = self._last_hash = digest
                n = self.iter = self.iter + 1
                self.block[n] = block
                if self._each_block_hook is not None:
                    self._call_hook(n, block)
        if self._trace_opcodes:
            shape = op.opcode_shape
            if shape is None:
                shape = op.opcode_shape = self._shape(op.code, "opcode", pc, op.op_name, line)
            self._emit_block(vm, op.code, shape, None, frame, local)
        return None

    def _learn_op(self, vm: VMState, event: OpStart) -> _Op | None:
        """The watched instruction ``event`` (met the first time), or None when
        it cannot make a block."""
        code = vm.code
        if code is None:
            return None
        if self._plain_ops and not event.line_start:
            watch = self._watch.get(id(code))
            if watch is None:
                watch = self._watch[id(code)] = _watched_cached(code)
            if event.pc not in watch:
                return None
        op = self._ops[id(event)] = _Op(code, event, self._plain_ops)
        return op

    def _on_other(self, vm: VMState, event: TraceEvent) -> object:
        """Calls, returns, exceptions and the end of the run (few: no fast path)."""
        t = type(event)
        depth = vm.depth
        record = self._record
        if t is CallStart:
            ev_call: CallStart = event  # type: ignore[assignment]
            record.append((ev_call, vm.gas + self._skipped, depth, vm.thread, None))
            self._rec_at = (vm.thread << 20) | depth
            if ev_call.kind == "enter":
                # the frame that called start(): 0.0.16 (sys.settrace) never saw it
                # (its thread's: another thread's frame at that depth is traced)
                self._skip_key = (vm.thread << 20) | depth
                return None
            key = (vm.thread << 20) | depth
            self._forget_frame(key)
            code = vm.code
            offset = vm.offset
            if code is not None:
                line = ev_call.first_line
                if ev_call.kind != "call":
                    # a generator resumed: settrace's "call" is at the line it goes
                    # on at (its yield's), and no "line" follows for that line
                    line = _line_at(code, offset)
                    self._frames[key] = (offset, line)
                shape = self._shape(code, "call", offset, _opname(code, offset), line)
                self._emit_block(vm, code, shape, None)
        elif t is Return:
            ev_ret: Return = event  # type: ignore[assignment]
            value = vm.renderer.render(ev_ret.value)
            # the record keeps the rendering, never the object (no lifetime changes)
            record.append((Return(ev_ret.kind, ev_ret.code, ev_ret.pc, value),
                           vm.gas + self._skipped, depth, vm.thread, None))
            self._rec_at = -1
            if (vm.thread << 20) | depth == self._skip_key:
                self._skip_key = -1
                self._forget_frame((vm.thread << 20) | depth)
                return None
            code = vm.code
            if code is not None:
                raised = self._raised.get((vm.thread << 20) | depth)
                if ev_ret.kind == "unwind" and raised is not None:
                    # where the exception was raised or re-raised, not the cleanup
                    # code it left by (as settrace's f_lasti and f_lineno say)
                    line, pc, opname = raised
                    shape = self._shape(code, "return", pc, opname, line)
                    self._emit_block(vm, code, shape, None)
                else:
                    arg = None if ev_ret.kind == "unwind" else value
                    shape = self._shape(code, "return", ev_ret.pc, _opname(code, ev_ret.pc),
                                        _line_at(code, ev_ret.pc))
                    self._emit_block(vm, code, shape, arg)
            self._forget_frame((vm.thread << 20) | depth)
        elif t is OpException:
            ev_exc: OpException = event  # type: ignore[assignment]
            record.append((ev_exc, vm.gas + self._skipped, depth, vm.thread, None))
            self._rec_at = (vm.thread << 20) | depth
            if ev_exc.kind == "handled" or self._rec_at == self._skip_key:
                return None
            if ev_exc.line > 0:
                self._raised[self._rec_at] = (ev_exc.line, ev_exc.pc, ev_exc.op_name)
            if ev_exc.kind == "reraise":
                return None  # settrace reported no re-raise (bare raise, finally, cleanup)
            code = vm.code
            if code is not None:
                shape = self._shape(code, "exception", ev_exc.pc, ev_exc.op_name, ev_exc.line)
                self._emit_block(vm, code, shape, [ev_exc.error_type, ev_exc.message])
        elif t is Stop:
            record.append((event, vm.gas + self._skipped, 0, vm.thread, None))
            self._gas_used = vm.gas_used - self._skipped
            self._frames.clear()
            self._raised.clear()
            self._ops.clear()
            self._shapes.clear()
        return None

    def _find_frame(self, code: CodeType, vm: VMState) -> FrameType | None:
        """The live frame running ``code``, a few frames above the tracer (or
        ``vm.frame``); where it was is where ``__call__`` looks first next time."""
        f: FrameType | None = sys._getframe(2)  # the tracer's caller
        for up in range(2, 8):
            if f is None:
                break
            if f.f_code is code:
                self._up = up - 1
                return f
            f = f.f_back
        return vm.frame

    def _forget_frame(self, key: int) -> None:
        """A frame starts or ends at ``key``: no line seen there yet."""
        self._frames.pop(key, None)
        self._raised.pop(key, None)
        if self._cur == key:
            self._cur = -1

    def _site(self, code: CodeType, line: int) -> _Site:
        key = (id(code), line)
        site = self._sites.get(key)
        if site is None:
            ignored = self._inline_commands(code.co_filename, line)
            site = self._sites[key] = _Site(code, line, self._pathelements, ignored)
        return site

    def _inline_commands(self, filename: str, line: int) -> bool:
        """Apply a ``#*BTC`` command on the line before ``line``; True if the
        line's text is to be hidden."""
        name = _file_parts(filename, 0)[0]
        previous = linecache.getline(filename, line - 1).strip()
        if previous[:5].upper() == "#*BTC":
            words = previous.split()[1:]
            if words:
                command = words[0].upper()
                if command == "IGNORENEXT":
                    lines = self.ignorecode.setdefault(name, [])
                    if line not in lines:
                        lines.append(line)
                elif command == "IGNOREGLOBAL" and len(words) > 1:
                    if words[1] not in self.ignoreglobal:
                        self.ignoreglobal.append(words[1])
                elif (
                    command == "IGNORELOCAL" and len(words) > 1
                    and words[1] not in self.ignorelocal
                ):
                    self.ignorelocal.append(words[1])
        return line in self.ignorecode.get(name, ())

    def _shape(self, code: CodeType, event: str, pc: int, opname: str, line: int) -> _Shape:
        """The fixed part of the blocks of one event at one site (made once a run)."""
        key = (id(code), line, event, pc, opname)
        shape = self._shapes.get(key)
        if shape is None:
            site = self._sites.get((id(code), line)) or self._site(code, line)
            shape = self._shapes[key] = _shape_of(
                site, event, pc, opname, line, (self._globals, self._builtins, self._locals)
            )
        return shape

    def _emit_block(
        self, vm: VMState, code: CodeType, shape: _Shape, arg: object,
        frame: FrameType | None = None, local: dict[str, Any] | None = None,
    ) -> None:
        """Make the next block: a copy of the shape's template with the time,
        the value groups, ``Arg`` and ``Hash`` filled in, hashed as the JSON
        ``msgspec`` would make of it, assembled from encoded pieces (the fixed
        ones encoded once per shape, unchanged module globals once)."""
        ns = _time_ns()
        if ns >= self._second_ends:
            self._new_second(ns)
        now = self._second_text + "%06d" % ((ns - self._second_starts) // 1000)  # noqa: UP031
        block = shape.template.copy()
        block["DateTime"] = now
        parts: list[bytes] = [b'{"DateTime":"', now.encode(), shape.function]
        if self._wants_frame:
            if frame is None:
                frame = _frame_at(code, vm, 2)  # from __call__ on
            render = vm.renderer.render
            mode = self._globals
            if mode != "OFF":
                globs, piece = self._views.module_values(
                    frame.f_globals if frame is not None else {}, render, self.ignoreglobal
                )
                if mode == "CHANGES":
                    changes = _dict_changes(self.globs, globs)
                    block["Globals"] = changes
                    piece = _encode(changes) if changes else b"{}"
                else:
                    block["Globals"] = globs
                self.globs = globs
                parts.append(b',"Globals":')
                parts.append(piece)
            mode = self._builtins
            if mode != "OFF":
                built = list(frame.f_builtins) if frame is not None else []
                if built == self.built:  # the same names: the same rendering, kept
                    built = self.built
                    piece = self._built_piece
                else:
                    piece = self._built_piece = _encode(built)
                if mode == "CHANGES":
                    diff = _list_changes(self.built, built)
                    block["Builtins"] = diff
                    piece = _encode(diff) if diff else b"{}"
                else:
                    block["Builtins"] = built
                self.built = built
                parts.append(b',"Builtins":')
                parts.append(piece)
            mode = self._locals
            if mode != "OFF":
                if local is None:
                    f_locals = frame.f_locals if frame is not None else {}
                    if plain_values is not None and not self.ignorelocal:
                        local = plain_values(f_locals)
                    if local is None:
                        local = self._views.values(f_locals, render, self.ignorelocal)[0]
                if mode == "CHANGES":
                    changes = _dict_changes(self.locals, local)
                    block["Locals"] = changes
                    parts.append(b',"Locals":')
                    parts.append(_encode(changes) if changes else b"{}")
                else:
                    block["Locals"] = local
                    parts.append(b',"Locals":')
                    parts.append(_encode(local))
                self.locals = local
        if arg is None:
            parts.append(shape.tail_null)
        else:
            block["Arg"] = arg
            parts.append(shape.tail_arg)
            parts.append(_encode(arg))
            parts.append(shape.tail_end)
        parts.append(self._last_hash_bytes)
        parts.append(b'"}')
        data = b"".join(parts)
        if self._new_hash:
            h = self._hash_obj = self._ctor(data)
        else:
            h = self.hash
            h.update(data)
        digest = h.hexdigest(20) if self._shake else h.hexdigest()
        self._last_hash_bytes = digest.encode()
        block["Hash"] = self._last_hash = digest
        n = self.iter = self.iter + 1
        self.block[n] = block
        if self._each_block_hook is not None:
            self._call_hook(n, block)

    def _call_hook(self, n: int, block: Block) -> None:
        hook = self._each_block_hook
        assert hook is not None
        try:
            hook(n, block)
        except Exception as exc:  # a failing hook must not stop the program
            self.hook_errors.append(exc)

    def _new_second(self, ns: int) -> None:
        """``DateTime`` as ``datetime.now().strftime(_DATE)``: the date and time
        are formatted once a second, the microseconds every block (with ``%``:
        measured faster than an f-string or slicing ``str()``)."""
        second = ns // 1_000_000_000
        self._second_starts = second * 1_000_000_000
        self._second_ends = self._second_starts + 1_000_000_000
        self._second_text = datetime.fromtimestamp(second).strftime("%d/%m/%Y, %H:%M:%S.")
