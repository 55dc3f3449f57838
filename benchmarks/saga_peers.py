"""The same booking saga three ways, in one run: Restate's BookingWorkflow (as the original
example has it: five invocations), the saga shaped for speed (FastBookingWorkflow: one
invocation, concurrent steps), and DBOS 3.4 on SQLite, in-process — same steps, same simulated
APIs, success and compensation paths. Then where one Restate run's time goes, from Restate's
own records. Prints tables and one JSON line ``{"benchmark": "saga_peers", ...}``.

DBOS is installed by the ``bench`` extra (``make bench`` does it).
"""

from __future__ import annotations

import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import report, sized  # noqa: E402
from benchmarks.saga_latency import RUNS, SAGA_SERVICES, WARMUP, latency, summary  # noqa: E402
from restate_tutorial import views  # noqa: E402
from restate_tutorial.lab import Lab  # noqa: E402
from restate_tutorial.patterns.fast_booking import fast_booking_workflow  # noqa: E402
from restate_tutorial.patterns.sagas import charge, parse_booking, refund  # noqa: E402
from restate_tutorial.scenarios import GOOD_BOOKING, SEED_BOOKING  # noqa: E402
from restate_tutorial.simulated import travel  # noqa: E402

PATHS = {"success": (GOOD_BOOKING, False), "compensation": (SEED_BOOKING, True)}


def dbos_saga() -> tuple[Callable[[dict[str, Any]], Any], Callable[[], None]]:
    """The booking saga as a DBOS workflow (SQLite, in this process); returns it and a stop."""
    from dbos import DBOS
    from restate import TerminalError

    folder = tempfile.mkdtemp(prefix="dbos-bench-")
    DBOS(config={"name": "saga-peers", "system_database_url": f"sqlite:///{folder}/dbos.sqlite",
                 "log_level": "WARNING"})

    @DBOS.step()
    def keys() -> dict[str, str]:
        return {name: str(uuid.uuid4()) for name in ("flight", "car", "payment")}

    @DBOS.step()
    def step(action: Callable[..., Any], *args: Any) -> Any:
        return action(*args)

    @DBOS.workflow()
    def book(request: dict[str, Any]) -> dict[str, Any]:
        flight, car, payment = parse_booking(request)
        undo: list[Callable[[], Any]] = []
        try:
            key = keys()
            flight_id = step(travel.flights.reserve, flight, key["flight"])
            undo.append(lambda: step(travel.flights.cancel, flight_id))
            car_id = step(travel.car_rentals.reserve, car, key["car"])
            undo.append(lambda: step(travel.car_rentals.cancel, car_id))
            undo.append(lambda: step(refund, key["payment"]))
            step(charge, key["payment"], payment["card_number"], payment["amount"])
            step(travel.flights.confirm, flight_id)
            step(travel.car_rentals.confirm, car_id)
        except TerminalError:
            for compensation in reversed(undo):
                compensation()
            raise
        return {"flight_reservation": flight_id, "car_reservation": car_id}

    DBOS.launch()
    return book, DBOS.destroy


def dbos_latency(book: Callable[[dict[str, Any]], Any], body: dict, failure: bool
                 ) -> dict[str, float]:
    from restate import TerminalError

    samples = []
    for _ in range(WARMUP + RUNS):
        started = time.perf_counter()
        try:
            book(body)
            assert not failure
        except TerminalError:
            assert failure
        samples.append((time.perf_counter() - started) * 1000)
    travel.reset()
    return summary(samples[WARMUP:])


def where_the_time_goes(lab: Lab, workflow: str, runs: int = sized(20, 2)) -> dict[str, float]:
    """One successful run, timed by the client's clock and by Restate's records; then the CPU
    time per run of restate-server and of this Python process (the service host with the
    handlers, and the HTTP client) over ``runs`` more runs."""
    key = f"breakdown-{uuid.uuid4().hex}"
    sent = time.time()
    lab.ingress.call(workflow, "Run", GOOD_BOOKING, key=key)
    answered = time.time()
    [row] = lab.admin.sql("SELECT id, created_at, completed_at FROM sys_invocation WHERE"
                          f" target_service_name = '{workflow}' AND target_service_key = '{key}'")
    created = views.parse_time(row["created_at"]).timestamp()
    completed = views.parse_time(row["completed_at"]).timestamp()
    calls = lab.admin.sql("SELECT created_at, completed_at FROM sys_invocation"
                          f" WHERE invoked_by_id = '{row['id']}'")
    in_calls = sum(views.parse_time(c["completed_at"]).timestamp()
                   - views.parse_time(c["created_at"]).timestamp() for c in calls)
    print(views.waterfall(lab.admin, row["id"]))
    server, python = psutil.Process(lab.server.pid), psutil.Process()
    before = sum(server.cpu_times()[:2]), sum(python.cpu_times()[:2]), time.perf_counter()
    for _ in range(runs):
        lab.ingress.call(workflow, "Run", GOOD_BOOKING, key=f"cpu-{uuid.uuid4().hex}")
    after = sum(server.cpu_times()[:2]), sum(python.cpu_times()[:2]), time.perf_counter()
    travel.reset()
    per_run = [round((a - b) / runs * 1000, 1) for a, b in zip(after, before, strict=True)]
    return {"client_ms": round((answered - sent) * 1000, 1),
            "http_in_ms": round((created - sent) * 1000, 1),
            "in_restate_ms": round((completed - created) * 1000, 1),
            "in_called_invocations_ms": round(in_calls * 1000, 1),
            "called_invocations": len(calls),
            "http_out_ms": round((answered - completed) * 1000, 1),
            "restate_server_cpu_ms_per_run": per_run[0],
            "python_cpu_ms_per_run": per_run[1], "wall_ms_per_run": per_run[2]}


def main() -> None:
    results: dict[str, dict[str, dict[str, float]]] = {}
    with Lab(SAGA_SERVICES) as lab:
        lab.serve(fast_booking_workflow)
        for name, workflow in (("restate", "BookingWorkflow"),
                               ("restate_speed_shaped", "FastBookingWorkflow")):
            results[name] = {path: latency(lab, body, failure, workflow=workflow)
                             for path, (body, failure) in PATHS.items()}
        breakdown = {name: where_the_time_goes(lab, workflow) for name, workflow in
                     (("restate", "BookingWorkflow"), ("restate_speed_shaped",
                                                       "FastBookingWorkflow"))}
    book, stop = dbos_saga()
    try:
        results["dbos"] = {path: dbos_latency(book, body, failure)
                           for path, (body, failure) in PATHS.items()}
    finally:
        stop()
    print(f"\nThe booking saga, {RUNS} runs per path, one at a time (ms; Restate timed by an HTTP"
          " client through its ingress, DBOS by a call in its own process)")
    print(f"  {'':<22}{'success p50':>12}{'p99':>8}{'compensation p50':>19}{'p99':>8}"
          f"{'p50 vs DBOS':>13}")
    dbos_p50 = results["dbos"]["success"]["p50_ms"]
    for name, paths in results.items():
        print(f"  {name:<22}{paths['success']['p50_ms']:>12.1f}{paths['success']['p99_ms']:>8.1f}"
              f"{paths['compensation']['p50_ms']:>19.1f}{paths['compensation']['p99_ms']:>8.1f}"
              f"{paths['success']['p50_ms'] / dbos_p50:>12.2f}×")
    print("\nWhere the time goes, one successful run (ms; Restate's timestamps have 1 ms"
          " resolution, so http_in, the client's send until Restate created the invocation,"
          " is only known to be under 1 ms when it shows as ≤ 0):")
    for name, figures in breakdown.items():
        print(f"  {name}: " + ", ".join(f"{k} {v}" for k, v in figures.items()))
    report("saga_peers", {"runs": RUNS, **results, "breakdown": breakdown},
           {"saga success p50, Restate / DBOS (×)":
                results["restate"]["success"]["p50_ms"] / dbos_p50,
            "saga success p50, speed-shaped Restate / DBOS (×)":
                results["restate_speed_shaped"]["success"]["p50_ms"] / dbos_p50})


if __name__ == "__main__":
    main()
