"""`cnnx serve` under a burst: N requests at once (a page's assets in a few tabs).

Starts the real web demo server on 127.0.0.1 (a hand-written artifacts folder, as in
tests/test_serve.py), opens N connections at once, each fetching one of the page's
files, and records with the machine (benchmarks/machine.py) into
benchmarks/results/serve_burst.json: how many answered 200 and how many timed out, the
wall time of the burst, and the median and p90 latency of a request.

    python benchmarks/serve_burst.py [--requests 200] [--timeout 60] [--rounds 3]
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.machine import machine_info, write_result  # noqa: E402
from tests.test_serve import BURST_TARGETS, write_fake_artifacts  # noqa: E402
from toolkit.web.server import BACKLOG, WORKERS, make_server  # noqa: E402


def burst(host: str, port: int, requests: int, timeout: float) -> dict[str, Any]:
    targets = list(BURST_TARGETS)
    start = threading.Barrier(requests)

    def fetch(index: int) -> tuple[str, float]:
        start.wait()
        began = time.perf_counter()
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            connection.request("GET", targets[index % len(targets)])
            response = connection.getresponse()
            response.read()
            return str(response.status), time.perf_counter() - began
        except TimeoutError:
            return "timed out", time.perf_counter() - began
        finally:
            connection.close()

    began = time.perf_counter()
    with ThreadPoolExecutor(requests) as pool:
        answers = list(pool.map(fetch, range(requests)))
    wall = time.perf_counter() - began
    latencies = sorted(seconds for _, seconds in answers)
    return {
        "ok": sum(status == "200" for status, _ in answers),
        "timed_out": sum(status == "timed out" for status, _ in answers),
        "wall_s": round(wall, 3),
        "p50_s": round(statistics.median(latencies), 3),
        "p90_s": round(latencies[int(0.9 * (len(latencies) - 1))], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        site = write_fake_artifacts(Path(folder) / "artifacts")
        with make_server(site, port=0) as server:
            server.start()
            rounds = [
                burst(server.host, server.port, args.requests, args.timeout)
                for _ in range(args.rounds)
            ]
    record = {
        "machine": machine_info(),
        "requests": args.requests,
        "timeout_s": args.timeout,
        "workers": WORKERS,
        "backlog": BACKLOG,
        "rounds": rounds,
    }
    for number, result in enumerate(rounds, 1):
        print(f"round {number}: {result}")
    write_result(ROOT / "benchmarks" / "results" / "serve_burst.json", record)


if __name__ == "__main__":
    main()
