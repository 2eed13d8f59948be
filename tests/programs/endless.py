"""Runs until killed: for the tests that SIGKILL or SIGINT a traced process mid-run.

Each turn of the loop sleeps a millisecond, so that the step budget the tests
give (which bounds the trace's size if a signal comes late) lasts tens of
seconds of wall time however fast recording is: with the writer's thread the
loop alone used a million steps in a tenth of a second, and with a 0.1 ms nap
still within the few seconds a heavily loaded test machine took to send the
signal.  The tests wait for a few hundred kB of trace: a tenth of a second."""

import sys
import time


def step(n: int) -> int:
    return (n * 7 + 3) % 1_000_003


def main() -> None:
    n = 0
    print("running", flush=True)
    while True:
        n = step(n)
        time.sleep(0.001)


if __name__ == "__main__":
    main()
    sys.exit(0)
