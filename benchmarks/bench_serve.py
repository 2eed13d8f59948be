"""Load test of the snapshot service, loopback only, bounded in count and time.

Starts ``blocktrace serve`` on 127.0.0.1 (a free port), sends ``--requests``
requests (a small teaching program, 30-odd steps) from ``--clients``
concurrent clients, stopping early after ``--seconds``, and prints requests per
second and latency percentiles.  For scale it also measures, in the same run,
how fast bare ``python -I -c pass`` processes can be started one after another
(the floor of a process-per-request design) and prints the ratio.

    python benchmarks/bench_serve.py [--requests 200] [--clients 4] [--workers 2]
"""

from __future__ import annotations

import argparse
import http.client
import signal
import socket
import subprocess
import sys
import threading
import time

import msgspec

PROGRAM = """\
def fib(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a

values = [fib(i) for i in range(6)]
print(values)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def post(port: int, body: bytes) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", "/trace", body=body, headers={"content-type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def wait_healthy(port: int, proc: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            resp = conn.getresponse()
            health = msgspec.json.decode(resp.read())
            conn.close()
            return str(health["sandbox"])
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the server did not start")


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def spawn_floor(count: int) -> float:
    """Bare interpreter starts per second, one after another."""
    started = time.perf_counter()
    for _ in range(count):
        subprocess.run([sys.executable, "-I", "-c", "pass"], check=True)
    return count / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--sandbox", choices=("auto", "bwrap", "landlock", "none"),
                        default="auto", help="none runs the server with --unsafe-no-sandbox")
    args = parser.parse_args()

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "blocktrace", "serve", "--port", str(port), "--workers",
         str(args.workers), "--queue", str(args.clients * 2),
         *(["--unsafe-no-sandbox"] if args.sandbox == "none" else ["--sandbox", args.sandbox])],
    )
    try:
        sandbox = wait_healthy(port, proc)
        body = msgspec.json.encode({"source": PROGRAM, "steps": 1000})
        status, first = post(port, body)  # warm-up, and a check that it works
        response = msgspec.json.decode(first)
        assert status == 200 and response["status"] == "ok", first[:200]
        steps = len(response["steps"])

        latencies: list[float] = []
        failures = 0
        lock = threading.Lock()
        remaining = [args.requests]
        deadline = time.monotonic() + args.seconds

        def client() -> None:
            nonlocal failures
            while True:
                with lock:
                    if remaining[0] <= 0 or time.monotonic() > deadline:
                        return
                    remaining[0] -= 1
                t0 = time.perf_counter()
                code, _ = post(port, body)
                elapsed = time.perf_counter() - t0
                with lock:
                    latencies.append(elapsed)
                    if code != 200:
                        failures += 1

        started = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - started
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    floor = spawn_floor(20)
    latencies.sort()
    rps = len(latencies) / wall
    print(f"snapshot service: {len(latencies)} requests ({steps} steps each), "
          f"{args.clients} clients, {args.workers} workers, sandbox {sandbox}, "
          f"{failures} non-200")
    print(f"  throughput      {rps:8.1f} requests/s")
    print(f"  latency p50     {percentile(latencies, 0.50) * 1000:8.1f} ms")
    print(f"  latency p99     {percentile(latencies, 0.99) * 1000:8.1f} ms")
    print(f"  latency max     {latencies[-1] * 1000:8.1f} ms")
    print(f"  bare 'python -I -c pass' starts, one at a time: {floor:.1f}/s; "
          f"service / bare-start ratio {rps / floor:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
