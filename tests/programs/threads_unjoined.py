"""Starts a worker thread and returns without joining it: the interpreter waits
for it before exiting, and so must the trace."""

import threading
import time


def worker(n: int) -> None:
    time.sleep(0.2)
    total = sum(i * i for i in range(n))
    print(f"worker done {total}", flush=True)


threading.Thread(target=worker, args=(10,)).start()
print("main done", flush=True)
