"""Starts a worker thread and returns without joining it: the interpreter waits
for it before exiting, and so must the trace.

The worker waits for the main thread's line before its own (the order of the
output is the program's, not the scheduler's, on a loaded machine too), then
naps, so that it outlives the main module."""

import threading
import time

main_said = threading.Event()


def worker(n: int) -> None:
    main_said.wait()
    time.sleep(0.2)
    total = sum(i * i for i in range(n))
    print(f"worker done {total}", flush=True)


threading.Thread(target=worker, args=(10,)).start()
print("main done", flush=True)
main_said.set()
