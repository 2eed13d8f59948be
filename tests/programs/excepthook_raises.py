"""A program whose ``sys.excepthook`` raises, directly or through a signal
handler that raises while the hook runs (``python`` reports both as "Error in
sys.excepthook")."""

import signal
import sys


class Timeout(Exception):
    pass


def on_alarm(signum: int, frame: object) -> None:
    raise Timeout("too slow")


def broken_hook(kind: type, value: BaseException, tb: object) -> None:
    raise RuntimeError("the hook broke")


def signalled_hook(kind: type, value: BaseException, tb: object) -> None:
    signal.raise_signal(signal.SIGALRM)  # its handler raises here, as the hook runs
    sys.__excepthook__(kind, value, tb)  # type: ignore[arg-type]


signal.signal(signal.SIGALRM, on_alarm)
sys.excepthook = broken_hook if sys.argv[1] == "broken" else signalled_hook
print("before", flush=True)
raise ValueError("main failed")
