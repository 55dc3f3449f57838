"""What tracing costs: the saga's latency with traces exported vs without, in one window.

Two labs side by side, the same saga services: one exports restate-server's traces and the
service host's spans to an OTLP/HTTP collector (`Lab(traces=True)`: the in-process collector
notebook 12 uses), one exports nothing (no OTEL_EXPORTER_OTLP_ENDPOINT: the default). Bookings
alternate between them, one at a time, so both see the same machine. Prints a table and a JSON
line; the headline is p50 on / p50 off.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import report, sized  # noqa: E402
from benchmarks.saga_latency import SAGA_SERVICES, summary, timed  # noqa: E402
from restate_tutorial.lab import Lab  # noqa: E402
from restate_tutorial.scenarios import GOOD_BOOKING  # noqa: E402
from restate_tutorial.simulated import travel  # noqa: E402

RUNS = sized(100, 3)
WARMUP = sized(5, 1)


def main() -> None:
    os.environ.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)  # "off" is the default: nothing set
    samples: dict[str, list[float]] = {"tracing off": [], "tracing on": []}
    with Lab(SAGA_SERVICES) as off, Lab(SAGA_SERVICES, traces=True) as on:
        for n in range(WARMUP + RUNS):
            for name, lab in (("tracing off", off), ("tracing on", on)):
                took = timed(lab, GOOD_BOOKING, expect_failure=False)
                if n >= WARMUP:
                    samples[name].append(took)
        travel.reset()  # the ledgers grow with every run
        spans = len(on.traces.spans()) if on.traces else 0
    results = {name: summary(values) for name, values in samples.items()}
    print(f"BookingWorkflow latency over {RUNS} bookings each, alternating (ms, client-side)")
    for name, figures in results.items():
        print(f"  {name:<12} p50 {figures['p50_ms']:>6.1f}   p99 {figures['p99_ms']:>6.1f}"
              f"   mean {figures['mean_ms']:>6.1f}")
    ratio = results["tracing on"]["p50_ms"] / results["tracing off"]["p50_ms"]
    print(f"  spans received: {spans} ({spans / (WARMUP + RUNS):.0f} per booking)")
    report("tracing_overhead", {"runs": RUNS, "results": results, "spans": spans},
           {"saga p50, tracing on / off (×)": ratio})


if __name__ == "__main__":
    main()
