"""The stepper and the functions that run it: ``start``, ``stop``, ``trace``."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from blocktrace.tracers import Level, Tracer, _active, set_tracer
from blocktrace.tracers.level import level_tracer
from blocktrace.tracers.render import Renderer
from blocktrace.vm import stepper as _stepper_module
from blocktrace.vm.scope import Scope, ScopeError
from blocktrace.vm.stepper import (
    UNLIMITED_GAS,
    HaltRun,
    OutOfGas,
    Stepper,
    active_stepper,
    exception_text,
)

__all__ = [
    "UNLIMITED_GAS",
    "HaltRun",
    "OutOfGas",
    "Scope",
    "ScopeError",
    "Stepper",
    "active_stepper",
    "start",
    "stop",
    "trace",
]


def start(
    *,
    include: Iterable[str] | None = None,
    exclude: Iterable[str] | None = None,
    target: str | None = None,
    gas: int | None = None,
    use_repr: bool = False,
    stacklevel: int = 1,
) -> Stepper:
    """Start stepping with the current tracer (see ``set_tracer``).

    Scope defaults to the user's own code; ``include``/``exclude`` take paths,
    directories or module names, ``target`` a ``module:function`` to trace only
    while it runs.  ``gas`` is a step budget (unlimited by default).  The frame
    that calls ``start`` is traced from the next instruction on when in scope.

    ``set_tracer`` of a real tracer already starts a stepper with these
    defaults when none runs; calling ``start`` right after it (before the
    program has run more than a few instructions or called anything in scope)
    takes over from that one, as if it had never run.  Either way the stepper
    stops at interpreter exit if ``stop`` was not called: the tracer gets
    ``Stop`` with the exit status as ``output`` and the uncaught exception or
    ``SystemExit`` as ``error`` (``os._exit`` skips this: the trace is then
    left unsealed).
    """
    # Few calls here: each function called while the stepper set_tracer started
    # runs is seen once per run (see Stepper.start).
    if include is not None or exclude is not None or target is not None:
        scope = Scope(include, exclude, target)
    elif _DEFAULT_SCOPE:
        scope = _DEFAULT_SCOPE[0]
    else:
        scope = _default_scope()
    held = _stepper_module._current
    # The renderer set_tracer's stepper made (before the events were on) and has
    # not used (its events are held, and take_over drops them): a new one here
    # would be Python code run with PY_START on, seen once more per run.
    reused = held is not None and held._held is not None and not use_repr
    renderer = held.renderer if held is not None and reused else Renderer(use_repr=use_repr)
    if held is not None and held.take_over(scope, gas, renderer, stacklevel=stacklevel + 1):
        return held  # the stepper set_tracer started goes on as this one (one start, not two)
    if reused:  # not taken over: that one may have rendered
        renderer = Renderer(use_repr=use_repr)
    stepper = Stepper(scope, gas=gas, renderer=renderer)
    stepper.start(stacklevel=stacklevel + 1)
    return stepper


def stop(output: str = "", error: str | None = None) -> Stepper | None:
    """Stop the running stepper (emitting ``Stop``) and return it."""
    stepper = _stepper_module._current  # (no call: see start)
    if stepper is not None:
        stepper.stop(output, error)
    return stepper


@contextmanager
def trace(
    tracer: Tracer,
    *,
    include: Iterable[str] | None = None,
    exclude: Iterable[str] | None = None,
    target: str | None = None,
    gas: int | None = None,
    use_repr: bool = False,
    level: Level | None = None,
    max_size: int | None = None,
) -> Iterator[Stepper]:
    """Trace the body of the ``with`` block into ``tracer``, then restore the
    previous tracer.  An exception leaving the block is recorded in ``Stop``.

    ``level`` (``"op"``, ``"line"``, ``"call"``): send ``tracer`` only that
    level's events (the stepper produces no others; see ``Tracer.level``).
    ``None``: the tracer's own level (a ``ChainTracer``'s ``level=``, else
    ``op``).  A tracer that declares another level is refused (``ValueError``).

    ``max_size`` (bytes): the tracer stops recording at about that size, the
    block runs on, and the seal says so (``ChainTracer.limit_size``; a tracer
    without ``limit_size`` is refused with ``TypeError``)."""
    if max_size is not None:
        limit_size = getattr(tracer, "limit_size", None)
        if not callable(limit_size):
            raise TypeError(f"max_size needs a tracer that writes a trace (a ChainTracer), "
                            f"not {type(tracer).__name__}")
        limit_size(max_size)
    if level is not None:
        tracer = level_tracer(tracer, level)
    previous = set_tracer(tracer)
    try:
        stepper = start(
            include=include, exclude=exclude, target=target, gas=gas, use_repr=use_repr,
            stacklevel=3,
        )
        error: str | None = None
        try:
            yield stepper
        except BaseException as exc:
            name, message = exception_text(exc, stepper.renderer)
            error = "OutOfGas" if isinstance(exc, OutOfGas) else (
                f"{name}: {message}" if message else name
            )
            raise
        finally:
            stepper.stop("", error)
    finally:
        set_tracer(previous)


_DEFAULT_SCOPE: list[Scope] = []
"""``Scope()``, made once: the default scope's decisions depend on nothing that
changes, and one object makes a scope comparison an identity test."""


def _default_scope() -> Scope:
    if not _DEFAULT_SCOPE:
        _DEFAULT_SCOPE.append(Scope())
    return _DEFAULT_SCOPE[0]


def _start_for_set_tracer() -> None:
    """``set_tracer`` of a real tracer while no stepper runs (see ``start``)."""
    try:
        Stepper(_default_scope(), renderer=Renderer()).start(stacklevel=3, hold=True)
    except Exception as exc:  # all tool ids taken: the program goes on untraced
        if sys.__stderr__ is not None:
            sys.__stderr__.write(f"blocktrace: set_tracer could not start tracing: {exc}\n")


_active.starter = _start_for_set_tracer
