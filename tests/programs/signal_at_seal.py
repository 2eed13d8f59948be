"""Runs a program whose SIGALRM handler raises under ``run_program``
with a tracer (any callable is one) that raises ``SIGALRM`` as the run's
``Stop`` reaches it: the program's handler, which raises, arrives while
blocktrace seals the trace.  argv: TRACE."""

import signal
import sys

from blocktrace.events import Stop
from blocktrace.tracers.chain import ChainTracer
from blocktrace.vm.runner import Program, run_program
from blocktrace.vm.stepper import Stepper

PROGRAM = '''
import signal

class Timeout(Exception):
    pass

def on_alarm(signum, frame):
    print("handler ran", flush=True)
    raise Timeout("too slow")

signal.signal(signal.SIGALRM, on_alarm)
print("program done", flush=True)
'''


class SignalAtStop:
    def __init__(self, inner: ChainTracer) -> None:
        self.inner = inner

    def __call__(self, vm: object, event: object) -> object:
        if isinstance(event, Stop):
            signal.raise_signal(signal.SIGALRM)
        return self.inner(vm, event)  # type: ignore[arg-type]


trace = sys.argv[1]
script = trace + ".py"
with open(script, "w") as f:
    f.write(PROGRAM)
outcome = run_program(Program(script, []), SignalAtStop(ChainTracer(trace)), Stepper())
print(f"status {outcome.status}", flush=True)
