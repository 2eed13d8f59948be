"""``blocktrace run``: run a program like ``python`` does, recording its trace."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

from blocktrace.cli import (
    PROGRAM_ARGS_HELP,
    CliError,
    ProgramInterrupted,
    ProgramRun,
    byte_size,
    chosen_program,
    comma_list,
    gas_budget,
    positive_float,
    positive_int,
    refuse_overwriting,
    say_if_nothing_traced,
    text_token,
)

_VALUES = ("off", "on", "changes")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "run",
        help="run a Python program and record its hash-chained trace",
        description="Run SCRIPT (or -m MODULE) like python would -- same argv, stdin, stdout, "
        "stderr, exit status -- and write its instruction-level trace.",
        epilog=PROGRAM_ARGS_HELP,
    )
    p.add_argument("-o", "--output", metavar="FILE",
                   help="trace file (default: NAME.trace.jsonl in the current directory)")
    p.add_argument("--force", action="store_true", help="overwrite an existing trace file")
    p.add_argument("--gas", type=gas_budget, metavar="N",
                   help="step budget: stop the program after N traced instructions "
                   "(1 to 2**64-1: the trace's gas is an EIP-3155 uint64)")
    p.add_argument("--level", choices=("op", "line", "call"), default="op",
                   help="what to record: every instruction (op), the first instruction of "
                   "each source line run (line), or only calls, returns and exceptions "
                   "(call); gas counts every instruction at every level")
    p.add_argument("--locals", choices=_VALUES, default="off",
                   help="record local variables at each line: every time, changes only, or not")
    p.add_argument("--globals", choices=_VALUES, default="off",
                   help="record module globals at each line: every time, changes only, or not")
    p.add_argument("--include", action="append", default=[], metavar="PATH|MODULE",
                   help="trace only this file, directory or module (repeatable)")
    p.add_argument("--exclude", action="append", default=[], metavar="PATH|MODULE",
                   help="never trace this file, directory or module (repeatable)")
    p.add_argument("--target", metavar="MODULE:FUNCTION",
                   help="trace only while this function runs (and what it calls in scope)")
    p.add_argument("--genesis", type=text_token, metavar="TOKEN",
                   help="genesis token, e.g. a nonce from whoever will verify (default: random)")
    p.add_argument("--max-size", type=byte_size, metavar="BYTES",
                   help="stop recording when the trace reaches about BYTES (K, M, G: "
                   "1024-based); the program runs on to its end and the trace is sealed "
                   "saying so (error TraceSizeLimit, the step reached)")
    p.add_argument("--checkpoint-every", type=positive_int, metavar="N",
                   help="write a checkpoint FILE.cp.SIZE every N lines (and one at the end)")
    p.add_argument("--checkpoint-seconds", type=positive_float, metavar="T",
                   help="write a checkpoint every T seconds (and one at the end)")
    p.add_argument("--sign-key", metavar="PREFIX.key",
                   help="sign the checkpoints with this key (blocktrace keygen; needs [sign])")
    p.add_argument("--clock", action="store_true",
                   help="record wall-clock times (ns since the start) on call, return and "
                   "exception lines, for timelines (blocktrace export --to perfetto)")
    p.add_argument("--embed-source", action=argparse.BooleanOptionalAction, default=True,
                   help="put each traced source file's text into the trace once (a chained "
                   "source line), so the trace alone shows the code that ran (default: on; "
                   "--no-embed-source records only the files' SHA-256)")
    p.add_argument("--repr", dest="use_repr", action="store_true",
                   help="render objects with their own __repr__ (runs program code)")
    p.add_argument("--record-inputs", action="store_true",
                   help="also record what the run read from outside (stdin, the environment "
                   "variables it looked up, cwd, hash seed, Python version) so that "
                   "blocktrace replay can re-run it (docs/FORMAT.md)")
    p.add_argument("--deterministic", action="store_true",
                   help="seed random with 0 and fix the hash seed (PYTHONHASHSEED=0 unless set)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="print the trace file, line count and sealed head on stderr at the end")
    p.add_argument("-m", dest="module", metavar="MODULE ...",
                   help="run a library module as a script (the rest of the line is its arguments)")
    p.add_argument("program", nargs="*", metavar="SCRIPT [ARGS...]")
    p.set_defaults(handler=run)




def _fix_hash_seed(deterministic: bool) -> None:
    """Run again with ``PYTHONHASHSEED`` fixed (0 for ``--deterministic``, else a
    random seed that the inputs line records): the seed is chosen when the
    interpreter starts, so this process is replaced by one that has it."""
    import secrets

    started = os.path.basename(sys.argv[0]) in ("blocktrace", "__main__.py")
    if not (started and sys.argv[1:2] == ["run"]):
        raise CliError("--record-inputs/--deterministic need PYTHONHASHSEED set when "
                       "blocktrace run is called from Python")
    seed = "0" if deterministic else str(1 + secrets.randbelow(4294967295))
    env = dict(os.environ, PYTHONHASHSEED=seed)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, [sys.executable, "-m", "blocktrace", *sys.argv[1:]], env)
    except OSError as exc:
        raise CliError(f"cannot fix the hash seed (re-running {sys.executable}: "
                       f"{exc.strerror or exc})") from None


def run(args: argparse.Namespace) -> ProgramRun:
    from blocktrace.tracers.chain import ChainTracer
    from blocktrace.tracers.render import Renderer
    from blocktrace.vm.runner import Outcome, launch, target_problem
    from blocktrace.vm.scope import Scope, ScopeError
    from blocktrace.vm.stepper import Stepper

    if (args.record_inputs or args.deterministic) and not os.environ.get("PYTHONHASHSEED"):
        _fix_hash_seed(args.deterministic)
    program, name = chosen_program(
        args.module, args.program, "nothing to run: give a script (or -m MODULE)"
    )
    output = args.output or f"{name}.trace.jsonl"
    if os.path.isdir(output):
        raise CliError(f"{output}: is a directory")
    refuse_overwriting(
        [("trace", output)],
        [*(("the program", path) for path in program.source_files()),
         ("the signing key", args.sign_key)],
    )
    if os.path.exists(output) and not args.force:
        raise CliError(f"{output} exists: not overwriting it (use --force, or -o another file)")
    try:
        with program.on_path():
            scope = Scope(comma_list(args.include), comma_list(args.exclude), args.target)
    except ScopeError as exc:
        raise CliError(str(exc)) from None
    problem = target_problem(program, args.target) if args.target else None
    if problem is not None:
        raise CliError(problem)
    signer = None
    if args.sign_key:
        if args.checkpoint_every is None and args.checkpoint_seconds is None:
            raise CliError("--sign-key signs checkpoints: give --checkpoint-every or "
                           "--checkpoint-seconds too (or sign later: blocktrace sign)")
        from blocktrace.chain.checkpoint import load_signer
        from blocktrace.chain.note import NoteError

        try:
            signer = load_signer(args.sign_key)
        except NoteError as exc:
            raise CliError(str(exc)) from None
    try:
        tracer = ChainTracer(
            output,
            genesis=args.genesis,
            locals=args.locals,
            globals=args.globals,
            argv=[program.target, *program.args],
            force=args.force,
            checkpoint_every=args.checkpoint_every,
            checkpoint_seconds=args.checkpoint_seconds,
            signer=signer,
            clock=args.clock,
            max_size=args.max_size,
            level=args.level,
            embed_source=args.embed_source,
        )
    except OSError as exc:
        raise CliError(f"{output}: cannot write: {exc.strerror or exc}") from None
    stepper = Stepper(scope, gas=args.gas, renderer=Renderer(use_repr=args.use_repr))
    before_stop: Callable[[], None] | None = None
    if args.record_inputs or args.deterministic:
        from blocktrace.replay.inputs import INPUTS_EVENT, InputRecorder

        recorder = InputRecorder(deterministic=args.deterministic)
        options = {
            "module": program.is_module, "locals": args.locals, "globals": args.globals,
            "include": comma_list(args.include), "exclude": comma_list(args.exclude),
            "target": args.target, "gas": args.gas, "repr": args.use_repr,
            "level": args.level,
        }

        def write_inputs() -> None:
            members = recorder.inputs()
            if args.record_inputs:
                tracer.write_event(INPUTS_EVENT, {**members, "options": options})

        before_stop = write_inputs
        recorder.install()

    def then(outcome: Outcome) -> int:
        tracer.close(str(outcome.status), outcome.error or "tracer detached")
        if tracer.size_limited:
            from blocktrace.limits import size_text

            sys.stderr.write(
                f"blocktrace run: the trace reached --max-size {size_text(args.max_size)} "
                f"after {tracer.limit_step} instructions: recording stopped, the program ran "
                "on to its end\n")
        say_if_nothing_traced("run", stepper.gas_used, program, outcome.error, args.target)
        if args.verbose:
            sys.stderr.write(
                f"blocktrace: {tracer.lines} lines -> {output}, sealed head {tracer.head}\n"
            )
        if outcome.interrupted:
            raise ProgramInterrupted(outcome.status)
        return outcome.status

    # run from blocktrace.cli.main's own frame: the fewest frames under the program
    return ProgramRun(launch(program, tracer, stepper, before_stop), then)
