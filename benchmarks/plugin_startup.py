"""The pytest plugin's costs: starting the session's lab, serving a service the first time, and
what a test pays when it reuses both (the serve is a no-op, one call through Restate)."""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import restate  # noqa: E402
from restate import Context  # noqa: E402

from benchmarks.common import report, sized  # noqa: E402
from restate_tutorial.testing_lab import TestLab  # noqa: E402

STARTS = sized(3, 1)
CALLS = sized(50, 3)


def greeter() -> restate.Service:
    service = restate.Service("BenchGreeter")

    @service.handler()
    async def greet(ctx: Context, request: dict) -> str:
        return f"Hello {request['name']}!"

    return service


def main() -> None:
    starts, first_serves, reuses = [], [], []
    for _ in range(STARTS):
        began = time.perf_counter()
        lab = TestLab().start()
        starts.append(time.perf_counter() - began)
        service = greeter()
        try:
            began = time.perf_counter()
            lab.serve(service)
            lab.ingress.call("BenchGreeter", "greet", {"name": "first"})
            first_serves.append(time.perf_counter() - began)
            for _ in range(CALLS):
                began = time.perf_counter()
                lab.serve(service)  # what the next test does: already served, nothing to do
                lab.ingress.call("BenchGreeter", "greet", {"name": "again"})
                reuses.append(time.perf_counter() - began)
        finally:
            lab.stop()
    figures = {"session_start_s": round(statistics.median(starts), 3),
               "first_serve_and_call_s": round(statistics.median(first_serves), 3),
               "reuse_per_test_ms": round(statistics.median(reuses) * 1000, 2)}
    print(f"pytest plugin: session lab start {figures['session_start_s']} s (median of {STARTS}); "
          f"first serve + call {figures['first_serve_and_call_s']} s; a test reusing both "
          f"{figures['reuse_per_test_ms']} ms (median of {CALLS * STARTS})")
    report("plugin_startup", figures,
           {"session lab start (s)": figures["session_start_s"],
            "a test reusing the lab (ms)": figures["reuse_per_test_ms"]})


if __name__ == "__main__":
    main()
