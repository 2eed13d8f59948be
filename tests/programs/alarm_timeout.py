"""A signal-based timeout, as test runners and network code use: the SIGALRM
handler raises, wherever the program is -- under tracing, inside the tracer."""

import signal
import sys


class Timeout(Exception):
    pass


def on_alarm(signum: int, frame: object) -> None:
    raise Timeout("too slow")


def spin(limit: int = -1) -> int:
    n = 0
    while n != limit:
        n += 1
    return n


def main() -> None:
    signal.signal(signal.SIGALRM, on_alarm)
    results = []
    spin(1)
    for _ in range(int(sys.argv[1]) if len(sys.argv) > 1 else 5):
        signal.setitimer(signal.ITIMER_REAL, 0.005)
        try:
            spin()
        except Timeout as exc:
            results.append(str(exc))
    print(results)


if __name__ == "__main__":
    main()
