"""BookingWorkflow end-to-end latency: success path and compensation path.

Each run is one `POST /BookingWorkflow/<trip>/Run` through Restate's ingress, timed from the
client until the answer (result or the declined-payment error). Prints a table and a JSON line.
"""

from __future__ import annotations

import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import report, sized  # noqa: E402
from restate_tutorial.lab import IngressError, Lab  # noqa: E402
from restate_tutorial.patterns import sagas  # noqa: E402
from restate_tutorial.scenarios import GOOD_BOOKING, SEED_BOOKING  # noqa: E402
from restate_tutorial.simulated import travel  # noqa: E402

RUNS = sized(100, 3)
WARMUP = sized(5, 1)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def book(lab: Lab, body: dict, timeout: float = 30.0, workflow: str = "BookingWorkflow") -> object:
    """Send the booking, then wait for its outcome. (In a cluster whose partition leaders are
    moving, a plain call may answer 409 "already invoked" for a first request that Restate
    retried internally; send reports it as accepted, and attach gets the outcome.)"""
    invocation = lab.ingress.send(workflow, "Run", body,
                                  key=f"bench-{uuid.uuid4().hex}")
    return lab.ingress.attach(invocation, timeout=timeout)


def timed(lab: Lab, body: dict, expect_failure: bool, workflow: str = "BookingWorkflow") -> float:
    started = time.perf_counter()
    try:
        book(lab, body, workflow=workflow)
        assert not expect_failure
    except IngressError:
        if not expect_failure:
            raise
    return (time.perf_counter() - started) * 1000


def latency(lab: Lab, body: dict, expect_failure: bool, runs: int = RUNS,
            workflow: str = "BookingWorkflow") -> dict[str, float]:
    """p50/p99/mean in ms of ``runs`` bookings, one at a time, after a warm-up."""
    samples = [timed(lab, body, expect_failure, workflow) for _ in range(WARMUP + runs)]
    travel.reset()  # the ledgers grow with every run
    return summary(samples[WARMUP:])


def summary(samples: list[float]) -> dict[str, float]:
    return {"p50_ms": round(statistics.median(samples), 1),
            "p99_ms": round(percentile(samples, 0.99), 1),
            "mean_ms": round(statistics.fmean(samples), 1)}


SAGA_SERVICES = [sagas.flights, sagas.car_rentals, sagas.booking_workflow]


def main() -> None:
    with Lab(SAGA_SERVICES) as lab:
        results = {"success": latency(lab, GOOD_BOOKING, False),
                   "compensation": latency(lab, SEED_BOOKING, True)}
    print(f"BookingWorkflow latency over {RUNS} runs per path (ms, client-side, 1 at a time)")
    for name, figures in results.items():
        print(f"  {name:<13} p50 {figures['p50_ms']:>6.1f}   p99 {figures['p99_ms']:>6.1f}"
              f"   mean {figures['mean_ms']:>6.1f}")
    report("saga_latency", {"runs": RUNS, "results": results},
           {"success p50 (ms)": results["success"]["p50_ms"],
            "compensation p50 (ms)": results["compensation"]["p50_ms"]})


if __name__ == "__main__":
    main()
