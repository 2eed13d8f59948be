"""A signal-based timeout, as test runners and network code use: the SIGALRM
handler raises, wherever the program is -- under tracing, inside the tracer.

The busy loop ends at the handler's exception, or -- were that exception lost
-- at the handler's mark, however fast the machine: no step budget races the
timers (prints how many alarms rang, so a lost exception shows)."""

import signal
import sys


class Timeout(Exception):
    pass


RUNG: list[int] = []
"""One entry per alarm the handler took (appended before it raises)."""


def on_alarm(signum: int, frame: object) -> None:
    RUNG.append(signum)
    raise Timeout("too slow")


def spin(limit: int = -1) -> int:
    rung = len(RUNG)
    n = 0
    while n != limit and len(RUNG) == rung:
        n += 1
    return n


def main() -> None:
    signal.signal(signal.SIGALRM, on_alarm)
    results = []
    spin(1)
    for _ in range(int(sys.argv[1]) if len(sys.argv) > 1 else 5):
        try:  # set inside: an alarm that comes before spin() is caught too
            signal.setitimer(signal.ITIMER_REAL, 0.005)
            spin()
        except Timeout as exc:
            results.append(str(exc))
    print(results, len(RUNG))


if __name__ == "__main__":
    main()
