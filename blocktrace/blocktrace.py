"""The blocktrace 0.0.16 API on the new engine: ``blocktrace.blocktrace.BlockTrace``.

Code written for the 2021 tool runs unchanged::

    from blocktrace import blocktrace
    example = blocktrace.BlockTrace("Test", _globals="changes", _locals="on", _builtins="changes")
    example.start(); fib(3); example.stop()
    print(example.block)

``example.block`` is a dict of numbered blocks: block 0 holds ``DateTime``,
``Globals``/``Builtins``/``Locals`` (those switched on), ``sample`` (the genesis
text) and ``Hash``; every later block ``DateTime``, ``Function``, the switched-on
value groups, ``Line Text``, ``Event`` (``call``/``line``/``return``/
``exception``/``opcode``), ``Arg``, ``Instruction No``, ``Opcode``, ``Module``,
``Path``, ``Line No`` and ``Hash`` -- the hash of the block with ``Hash`` set to
the previous block's hash.  What changed from 0.0.16 (docs/MIGRATING.md):

- it is a tracer on the sys.monitoring engine (no ``sys.settrace``), tracing the
  user's own code only, from the frames that start after ``start()``;
- ``verifychain()`` returns ``True`` or a falsy :class:`ChainFailure` naming the
  block and the reason, and checks block 0 too;
- values JSON cannot encode are rendered (``<Foo #3>``), not dropped; nothing
  is ``repr``-ed, so tracing runs none of the program's code;
- exceptions and odd return values never raise inside the traced program;
- ``"changes"`` is computed here (no DeepDiff); DeepDiff keyword arguments are
  accepted and ignored;
- ``save(path)`` writes the same run as a standard hash-chained trace
  (docs/FORMAT.md) that ``blocktrace verify`` accepts.
"""

from __future__ import annotations

import dis
import hashlib
import linecache
import operator
import os
import shutil
import sys
import tempfile
import weakref
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from time import time_ns as _time_ns
from types import CodeType, FrameType
from typing import IO, Any, cast

import msgspec

from blocktrace._native import extension
from blocktrace.events import CallStart, OpException, OpStart, Return, Stop, TraceEvent
from blocktrace.tracers import Tracer, VMState
from blocktrace.vm.stepper import DISABLE

__all__ = ["BlockTrace", "ChainFailure"]

Block = dict[str, Any]
_MODES = ("ON", "OFF", "CHANGES")
_DATE = "%d/%m/%Y, %H:%M:%S.%f"
_encode = msgspec.json.Encoder().encode

_sha1_hex: Callable[..., str] | None = None
"""SHA-1 of a block's pieces in C, where the SHA extensions make it faster
than hashlib's (one call, no joined copy, no hash object)."""
_plain_values: Callable[[Any], dict[str, Any] | None] | None = None
"""A frame's locals as a new dict when every one shows the same in a block and
in the standard trace (numbers, None, bools), in C; else None."""
_cwriter = extension("blocktrace.chain._cwriter")
if _cwriter is not None and _cwriter.IMPLEMENTATION == "sha-ni":
    _sha1_hex = _cwriter.sha1_hex
_chook = extension("blocktrace.vm._chook")
if _chook is not None:
    _plain_values = _chook.plain_values


class ChainFailure:
    """Why :meth:`BlockTrace.verifychain` failed: falsy, with the block number."""

    def __init__(self, block: int | None, reason: str) -> None:
        self.block = block
        self.reason = reason

    def __bool__(self) -> bool:
        return False

    def __str__(self) -> str:
        where = "the chain" if self.block is None else f"block {self.block}"
        return f"{where}: {self.reason}"

    def __repr__(self) -> str:
        return f"ChainFailure(block={self.block!r}, reason={self.reason!r})"


def _mode(name: str, value: str) -> str:
    mode = str(value).upper()
    if mode not in _MODES:
        raise ValueError(f"{name} must be 'on', 'off' or 'changes', not {value!r}")
    return mode


def _dict_changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """DeepDiff-style changes between two rendered dicts (values included)."""
    out: dict[str, Any] = {}
    if old is new:
        return out
    added = {f"root[{k!r}]": v for k, v in new.items() if k not in old}
    removed = {f"root[{k!r}]": v for k, v in old.items() if k not in new}
    changed = {
        f"root[{k!r}]": {"new_value": v, "old_value": old[k]}
        for k, v in new.items()
        if k in old and _differs(old[k], v)
    }
    if added:
        out["dictionary_item_added"] = added
    if removed:
        out["dictionary_item_removed"] = removed
    if changed:
        out["values_changed"] = changed
    return out


def _differs(old: object, new: object) -> bool:
    """Whether two renderings differ, ``1``, ``1.0`` and ``True`` included
    (equal in Python, not in JSON)."""
    if old is new:
        return False
    if type(old) is not type(new) or old != new:
        return True
    return type(new) in (list, dict) and _encode(old) != _encode(new)


def _list_changes(old: list[str], new: list[str]) -> dict[str, Any]:
    if old == new:
        return {}
    old_set, new_set = set(old), set(new)
    out: dict[str, Any] = {}
    added = {f"root[{i}]": n for i, n in enumerate(new) if n not in old_set}
    removed = {f"root[{i}]": n for i, n in enumerate(old) if n not in new_set}
    if added:
        out["iterable_item_added"] = added
    if removed:
        out["iterable_item_removed"] = removed
    return out


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
        "__dict__", "__weakref__", "_built_piece", "_builtins", "_chain", "_chain_locals",
        "_ctor", "_cur", "_deepdiff", "_each_block_hook", "_frames", "_gas_used", "_genesis",
        "_globals", "_globals_seen", "_hash", "_hash_obj", "_last_hash", "_last_hash_bytes",
        "_lline", "_locals", "_lpc", "_new_hash", "_opaque", "_ops", "_pathelements",
        "_plain_locals", "_plain_ops", "_previous_tracer", "_rec_at", "_record", "_replayed",
        "_running", "_second_ends", "_second_starts", "_second_text", "_seqs", "_sha1_hex",
        "_shake", "_shapes", "_sites", "_skip_depth", "_skipped", "_spool", "_spool_closer",
        "_trace_lines", "_trace_opcodes", "_up", "_wants_frame", "_watch", "block", "built",
        "globs", "hook_errors", "ignorecode", "ignoreglobal", "ignorelocal", "iter", "locals",
        "may_disable",
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
        self._sha1_hex = _sha1_hex if _hash == "sha1" and self._new_hash else None
        """SHA-1 of a block's pieces in C, without joining them (where the
        SHA extensions make it faster than hashlib's)."""
        self.block[0] = first
        self._sites: dict[tuple[int, int], _Site] = {}
        self._frames: dict[int, tuple[int, int]] = {}
        self._skip_depth = 0
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
        self._opaque: dict[int, tuple[int, object]] = {}
        self._seqs: dict[int, tuple[int, tuple[object, ...], object, object, type]] = {}
        self._globals_seen: dict[int, _Seen] = {}
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
        """The hash object of the last block (0.0.16's attribute), made from
        the block when a block was hashed in C."""
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
        blocks = self.block if _block is None else _block
        if not blocks:
            return ChainFailure(None, "no blocks")
        numbers = sorted(blocks)
        if numbers != list(range(len(numbers))):
            missing = next(i for i, n in enumerate(numbers) if i != n)
            return ChainFailure(missing, "block missing (numbers are not 0, 1, 2, ...)")
        running = None
        previous = ""
        for n in numbers:
            b = blocks[n]
            if not isinstance(b, dict) or "Hash" not in b:
                return ChainFailure(n, "not a block (no Hash)")
            copy = dict(b)
            stored = copy.pop("Hash")
            if n:
                copy["Hash"] = previous
            try:
                data = _encode(copy)
            except (TypeError, msgspec.EncodeError) as exc:
                return ChainFailure(n, f"cannot be encoded: {exc}")
            if n == 0 or self._new_hash:
                running = self._new()
            assert running is not None
            running.update(data)
            computed = self._hex(running)
            if computed != stored:
                return ChainFailure(
                    n, f"hash mismatch: stored {stored}, content hashes to {computed}"
                )
            previous = stored
        return True

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
        self._skip_depth = 0
        self._replayed = False
        self._watch.clear()
        self._ops.clear()
        self._shapes.clear()
        self._sites.clear()
        # renderings by id are the run's renderer's (its object numbers are per run)
        self._opaque.clear()
        self._seqs.clear()
        self._globals_seen.clear()
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
        """Write the run as a standard blocktrace trace (docs/FORMAT.md: every
        instruction, with locals when ``_locals`` is on) that ``blocktrace
        verify`` accepts, overwriting ``path``; returns its sealed head.

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
            vm = _ReplayVM(self._gas_used)
            chain = self._chain
            gas = 0
            for entry in self._record:
                if type(entry) is OpStart:  # same frame as before: only gas moved on
                    vm.gas = gas
                    vm.values = None
                    chain(vm, entry)
                    gas -= 1
                    continue
                if len(entry) == 2:  # a line start in the same frame: gas one less
                    vm.gas = gas
                    vm.values = entry[1]
                    chain(vm, entry[0])
                    gas -= 1
                    continue
                event, vm.gas, vm.depth, thread, vm.values = entry
                vm.thread = thread
                if thread > vm.threads_seen:
                    vm.threads_seen = thread
                chain(vm, event)
                # the stepper charges an instruction after its OpStart, nothing else
                gas = vm.gas - 1 if type(event) is OpStart else vm.gas
            chain.close()
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
            if _plain_values is None or self.ignorelocal:
                local, values = self._values(f_locals, vm.renderer.render, self.ignorelocal)
            else:
                local = _plain_values(f_locals)  # numbers only: one dict for both views
                if local is None:
                    local, values = self._values(f_locals, vm.renderer.render, self.ignorelocal)
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
        if line <= 0 or depth == self._skip_depth:
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
                    if (seen is not None and seen.version_view is not None and not seen.volatile
                            and seen.version_view.value == seen.version
                            and seen.hidden == len(self.ignoreglobal)):
                        shown = seen.shown
                        piece = seen.encoded
                    else:
                        shown, piece = self._module_values(globs, vm.renderer.render)
                    block["Globals"] = self.globs = shown
                    member = b',"Globals":'
                else:
                    member = piece = b""
                sha1_hex = self._sha1_hex
                if sha1_hex is not None:
                    digest = sha1_hex(b'{"DateTime":"', now, shape.function, member, piece,
                                      b',"Locals":', _encode(local), shape.tail_null,
                                      self._last_hash, b'"}')
                    self._hash_obj = None  # made from the block if asked for
                else:
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
                self._skip_depth = depth
                return None
            self._forget_frame((vm.thread << 20) | depth)
            code = vm.code
            offset = vm.offset
            if code is not None:
                shape = self._shape(code, "call", offset, _opname(code, offset),
                                    ev_call.first_line)
                self._emit_block(vm, code, shape, None)
        elif t is Return:
            ev_ret: Return = event  # type: ignore[assignment]
            value = vm.renderer.render(ev_ret.value)
            # the record keeps the rendering, never the object (no lifetime changes)
            record.append((Return(ev_ret.kind, ev_ret.code, ev_ret.pc, value),
                           vm.gas + self._skipped, depth, vm.thread, None))
            self._rec_at = -1
            if depth == self._skip_depth:
                self._skip_depth = 0
                self._forget_frame((vm.thread << 20) | depth)
                return None
            code = vm.code
            if code is not None:
                arg = None if ev_ret.kind == "unwind" else value
                shape = self._shape(code, "return", ev_ret.pc, _opname(code, ev_ret.pc),
                                    _line_at(code, ev_ret.pc))
                self._emit_block(vm, code, shape, arg)
            self._forget_frame((vm.thread << 20) | depth)
        elif t is OpException:
            ev_exc: OpException = event  # type: ignore[assignment]
            record.append((ev_exc, vm.gas + self._skipped, depth, vm.thread, None))
            self._rec_at = (vm.thread << 20) | depth
            if ev_exc.kind == "handled" or depth == self._skip_depth:
                return None
            code = vm.code
            if code is not None:
                shape = self._shape(code, "exception", ev_exc.pc, ev_exc.op_name, ev_exc.line)
                self._emit_block(vm, code, shape, [ev_exc.error_type, ev_exc.message])
        elif t is Stop:
            record.append((event, vm.gas + self._skipped, 0, vm.thread, None))
            self._gas_used = vm.gas_used - self._skipped
            self._frames.clear()
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
        parts: list[bytes | str] = [b'{"DateTime":"', now.encode(), shape.function]
        if self._wants_frame:
            if frame is None:
                frame = _frame_at(code, vm, 2)  # from __call__ on
            render = vm.renderer.render
            mode = self._globals
            if mode != "OFF":
                globs, piece = self._module_values(
                    frame.f_globals if frame is not None else {}, render
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
                    if _plain_values is not None and not self.ignorelocal:
                        local = _plain_values(f_locals)
                    if local is None:
                        local = self._values(f_locals, render, self.ignorelocal)[0]
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
        sha1_hex = self._sha1_hex
        if sha1_hex is not None:
            parts.append(self._last_hash)
            parts.append(b'"}')
            digest = sha1_hex(*parts)
            self._hash_obj = None  # made from the block if asked for
        else:
            parts.append(self._last_hash_bytes)
            parts.append(b'"}')
            data = b"".join(cast(list[bytes], parts))
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

    def _module_values(
        self, values: dict[str, Any], render: Callable[[object], object]
    ) -> tuple[dict[str, Any], bytes]:
        """``_values`` of a module's globals, which seldom change, and its JSON.

        While the dict is unchanged -- its version tag (``_dict_version_view``)
        is the same, or where there is none the same names hold the same
        objects -- every value but the containers (rendered again each time)
        shows as before: scalars are immutable and everything else is shown
        by type and identity alone (``<Type #n>``)."""
        hidden = self.ignoreglobal
        seen = self._globals_seen.get(id(values))
        if seen is not None and seen.hidden == len(hidden):
            view = seen.version_view
            if view is not None:
                # the dict at this address is ``values`` (alive: we hold it)
                unchanged = view.value == seen.version
            else:
                objects = list(values.values())
                unchanged = (seen.ids == list(map(id, objects)) and seen.keys == list(values)
                             and seen.type_ids == list(map(id, map(type, objects))))
            if unchanged:
                if not seen.volatile:
                    return seen.shown, seen.encoded
                shown = dict(seen.shown)
                shown.update(
                    self._values({k: values[k] for k in seen.volatile}, render, hidden)[0]
                )
                encoded = _encode(shown)
                if encoded != seen.encoded:
                    seen.shown = shown
                    seen.encoded = encoded
                return seen.shown, seen.encoded
        view = _dict_version_view(values)
        version = view.value if view is not None else 0
        shown = self._values(values, render, hidden)[0]
        keys = list(values)
        objects = list(values.values())
        volatile = [k for k, v in zip(keys, objects, strict=True)
                    if type(v) in _LOOKED_INTO and type(v) not in _SCALARS
                    and k != "__builtins__"]
        encoded = _encode(shown)
        if view is not None:
            seen = _Seen(shown, encoded, len(hidden), volatile, view, version)
        else:
            # without a version tag, the objects' identities: scalars are kept (so
            # their ids stay theirs), other objects only by id and type, so
            # nothing of the program is kept alive
            seen = _Seen(shown, encoded, len(hidden), volatile, None, 0)
            seen.keys = keys
            seen.ids = list(map(id, objects))
            seen.type_ids = list(map(id, map(type, objects)))
            seen.keep = [v for v in objects if type(v) in _SCALARS]
        self._globals_seen[id(values)] = seen
        return shown, encoded

    def _values(
        self, values: Any, render: Callable[[object], object], hidden: list[str],
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The block's view of ``values`` (JSON values as they are, the rest
        rendered) and the standard trace's (everything rendered), in one pass;
        hidden names are hidden in both.  The two are one dict while every
        value shows the same in both (numbers, ``None``, ``<Type #n>``)."""
        out: dict[str, Any] = {}
        differ: list[tuple[str, object]] | None = None
        """(name, the trace's view) where it is not the block's"""
        lo = _MIN_INT
        hi = _MAX_INT
        opaque = self._opaque
        shown: object
        rendered: object
        for k, v in values.items():
            if type(k) is not str:
                continue
            t = type(v)
            # numbers and None, the common case: as they are, in both views
            if t is int:
                if lo < v < hi and not hidden:
                    out[k] = v
                    continue
            elif t is float:
                if v - v == 0.0 and not hidden:  # finite
                    out[k] = v
                    continue
            elif (v is None or t is bool) and not hidden:
                out[k] = v
                continue
            if k == "__builtins__":  # builtins have their own group
                continue
            if hidden and k in hidden:
                shown = rendered = "[OBFUSCATED]"
            elif t is int or t is float:  # out of range, or not finite
                shown = rendered = render(v)
            elif v is None or t is bool:
                shown = rendered = v
            elif t is str:
                shown = v if len(v) <= _MAX_TEXT else v[:_MAX_TEXT] + "…"
                rendered = render(v)
            elif t is list or t is tuple:
                # a sequence of scalars that did not change since it was last
                # shown (same length, same first items) is shown the same
                n = len(v)
                head = tuple(v[:_MAX_ITEMS])  # exact list/tuple: no program code runs
                seen = self._seqs.get(id(v))
                if (seen is None or seen[0] != n or seen[4] is not t
                        or not all(map(operator.is_, seen[1], head))):
                    rendered = render(v)
                    seen = (n, head, rendered, _plain(v, render, 3, rendered), t)
                    if all(type(x) in _SCALARS for x in head):
                        self._seqs[id(v)] = seen
                shown = seen[3]
                rendered = seen[2]
            elif t in _LOOKED_INTO:
                rendered = render(v)
                shown = _plain(v, render, 3, rendered)
            else:
                # shown as <Type #n>: a function of type and id only, so keep it
                hit = opaque.get(id(v))
                if hit is None or hit[0] != id(t):
                    hit = opaque[id(v)] = (id(t), render(v))
                shown = rendered = hit[1]
            out[k] = shown
            if rendered is not shown:
                if differ is None:
                    differ = []
                differ.append((k, rendered))
        out.pop("__builtins__", None)  # a number under that name took the fast path
        if differ is None:
            return out, out
        chain = out.copy()
        chain.update(differ)
        return out, chain


class _Op:
    """A watched instruction site, for the run: what its blocks need, found once."""

    __slots__ = ("code", "line", "line_shape", "line_start", "mid_line", "op_name",
                 "opcode_shape", "pc")

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


class _Seen:
    """A module's globals as last shown, and what says they are unchanged."""

    __slots__ = ("encoded", "hidden", "ids", "keep", "keys", "shown", "type_ids", "version",
                 "version_view", "volatile")

    def __init__(
        self, shown: dict[str, Any], encoded: bytes, hidden: int, volatile: list[str],
        version_view: Any, version: int,
    ) -> None:
        self.shown = shown
        self.encoded = encoded
        self.hidden = hidden
        self.volatile = volatile
        self.version_view = version_view
        self.version = version
        self.keys: list[str] = []
        self.ids: list[int] = []
        self.type_ids: list[int] = []
        self.keep: list[object] = []


def _probe_dict_version() -> int | None:
    """Where CPython 3.12 and 3.13 keep a dict's version tag, or None.

    ``PyDictObject.ma_version_tag`` (PEP 509; deprecated for C extensions in
    3.12 but still maintained by CPython itself, gone in 3.14) is given a new,
    globally unique value by every change to the dict (storing a different
    object, adding or deleting a key, clearing) and by the creation of a dict;
    storing the same object again leaves it.  There is no Python API for it,
    so it is read with ``ctypes`` -- only where the layout is the one known
    (checked here on live dicts: the length field right after the object
    header, the tag after it, changing and not changing as it must); anywhere
    else the callers compare the objects' identities instead."""
    if sys.implementation.name != "cpython" or sys.version_info[:2] not in ((3, 12), (3, 13)):
        return None
    if not getattr(sys, "_is_gil_enabled", lambda: True)():
        return None
    head = object.__basicsize__
    if dict.__basicsize__ != head + 32:
        return None
    try:
        import ctypes
    except ImportError:
        return None

    def used(d: dict[str, object]) -> int:
        return ctypes.c_ssize_t.from_address(id(d) + head).value

    def version(d: dict[str, object]) -> int:
        return ctypes.c_uint64.from_address(id(d) + head + 8).value

    empty: dict[str, object] = {}
    probe: dict[str, object] = {"x": 1}
    checks = [used(empty) == 0, used(probe) == 1, version(empty) != version(probe)]
    before = version(probe)
    probe["x"] = probe["x"]  # the same object again: no change
    checks.append(version(probe) == before)
    marker = object()
    changes: list[Callable[[], object]] = [
        lambda: probe.__setitem__("x", marker), lambda: probe.__setitem__("y", 2),
        lambda: probe.__delitem__("y"), lambda: probe.update(z=3), lambda: probe.pop("z"),
        lambda: probe.setdefault("w", 4), probe.clear,
    ]
    for change in changes:
        before = version(probe)
        change()
        checks.append(version(probe) != before)
    checks.append(used(probe) == 0)
    return head + 8 if all(checks) else None


_dict_version_at: list[int | None] = []
"""The offset of a dict's version tag (``_probe_dict_version``, on first use;
None where unknown)."""


def _dict_version_view(values: dict[str, Any]) -> Any:
    """A live ``ctypes`` view of the version tag of ``values`` (None where
    unknown); read it only while ``values`` itself is in hand, so that the
    address is still that dict's."""
    if not _dict_version_at:
        _dict_version_at.append(_probe_dict_version())
    at = _dict_version_at[0]
    if at is None or type(values) is not dict:
        return None
    import ctypes

    return ctypes.c_uint64.from_address(id(values) + at)


_MAX_TEXT = 200
_UNSET: Any = object()
_SCALARS = frozenset({int, float, bool, str, type(None)})
_MAX_INT = 2**63
_MIN_INT = -_MAX_INT
_LOOKED_INTO = frozenset(
    {int, float, complex, bool, str, bytes, bytearray, list, tuple, set, frozenset, dict, range,
     type(None)}
)
"""Types the renderer shows by value; everything else is ``<Type #n>``."""
_MAX_ITEMS = 20


def _plain(
    value: object, render: Callable[[object], object], depth: int, rendered: object = _UNSET,
) -> object:
    """A value as 0.0.16 stored it when JSON could encode it (strings, numbers,
    lists and string-keyed dicts, bounded), otherwise its rendering
    (``rendered`` when the caller has it already)."""
    t = type(value)
    if t is str:
        s = cast(str, value)
        return s if len(s) <= _MAX_TEXT else s[:_MAX_TEXT] + "…"
    if value is None or t is bool or t is int or t is float:
        return render(value) if rendered is _UNSET else rendered
    if depth > 0 and (t is list or t is tuple) and len(value) <= _MAX_ITEMS:  # type: ignore[arg-type]
        return [_plain(v, render, depth - 1) for v in cast(list[object], value)]
    if depth > 0 and t is dict and len(value) <= _MAX_ITEMS:  # type: ignore[arg-type]
        items = dict.items(cast(dict[object, object], value))
        if all(type(k) is str for k, _ in items):
            return {cast(str, k): _plain(v, render, depth - 1) for k, v in items}
    return render(value) if rendered is _UNSET else rendered


class _ReplayFrame:
    """What ChainTracer reads from a frame, from the record."""

    __slots__ = ("f_globals", "f_locals")

    def __init__(self, values: dict[str, Any]) -> None:
        self.f_locals = values
        self.f_globals = values


class _Identity:
    """The record holds renderings already: rendering them again is identity."""

    @staticmethod
    def render(value: object) -> object:
        return value


class _ReplayVM:
    """The ``vm`` of a recorded run, replayed into the standard ChainTracer."""

    def __init__(self, gas_used: int) -> None:
        self.gas = 0
        self.gas_limit = 0
        self.depth = 0
        self.thread = 1
        self.threads_seen = 1
        self.code = None
        self.offset = 0
        self.values: dict[str, Any] | None = None
        self.renderer = _Identity()
        self._gas_used = gas_used

    @property
    def gas_used(self) -> int:
        return self._gas_used

    @property
    def frame(self) -> _ReplayFrame | None:
        return _ReplayFrame(self.values) if self.values is not None else None

    def restart_events(self) -> None:
        """Nothing to restart in a replay."""


_BACK = frozenset(dis.opmap[name] for name in ("JUMP_BACKWARD", "JUMP_BACKWARD_NO_INTERRUPT")
                  if name in dis.opmap)


_WATCHED: weakref.WeakKeyDictionary[CodeType, frozenset[int]] = weakref.WeakKeyDictionary()
"""``_watched`` per code object, across runs (a code object's bytecode never
changes; the cache keeps no code object alive)."""


def _watched_cached(code: CodeType | None) -> frozenset[int]:
    if code is None:
        return frozenset()
    watch = _WATCHED.get(code)
    if watch is None:
        watch = _WATCHED[code] = _watched(code)
    return watch


def _watched(code: CodeType | None) -> frozenset[int]:
    """The offsets of ``code`` at which a settrace-style "line" can start: the
    first instruction of each line range, jump targets and exception handlers
    (entered from another line or from further on), the first instruction and
    the one after each ``RESUME`` (a generator resuming), and the jumps back to
    a target on their own line (the target is a new "line" because it comes
    again).  Every other instruction is only reached by falling through from
    the one before it, on the same line and going forward, so it can never make
    a block; a jump back from another line makes the target's line differ."""
    if code is None:
        return frozenset()
    out = {0}
    line_of: dict[int, int | None] = {}
    for start, end, line in code.co_lines():
        out.add(start)
        for offset in range(start, end, 2):
            line_of[offset] = line
    bytecode = dis.Bytecode(code)
    out.update(entry.target for entry in cast(Any, bytecode).exception_entries)
    after_resume = False
    for ins in bytecode:
        if after_resume or ins.is_jump_target:
            out.add(ins.offset)
        elif ins.opcode in _BACK:
            here = line_of.get(ins.offset)
            there = line_of.get(cast(int, ins.argval))
            if here is None or there is None or here == there:
                out.add(ins.offset)
        after_resume = ins.opname == "RESUME"
    return frozenset(out)


def _frame_at(code: CodeType, vm: VMState, up: int) -> FrameType | None:
    """The live frame running ``code``: looked for from ``up`` frames above the
    caller (where the stepper's callback was called from), a few frames on,
    else found by ``vm.frame``."""
    try:
        f: FrameType | None = sys._getframe(up + 1)
    except ValueError:
        f = None
    for _ in range(4):
        if f is None:
            break
        if f.f_code is code:
            return f
        f = f.f_back
    return vm.frame


def _opname(code: CodeType | None, offset: int) -> str:
    if code is None:
        return ""
    raw = code.co_code
    if 0 <= offset < len(raw):
        return dis.opname[raw[offset]]
    return f"<{offset}>"


def _line_at(code: CodeType | None, offset: int) -> int:
    if code is None:
        return 0
    for start, end, line in code.co_lines():
        if start <= offset < end:
            return line or code.co_firstlineno
    return code.co_firstlineno
