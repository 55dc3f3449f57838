"""One node against a three-node cluster (replication 2), measured in one run: saga latency,
Kafka throughput, and the time from SIGKILLing the node a client talks to until that client's
next successful call through a surviving node."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import report, sized  # noqa: E402
from benchmarks.kafka_throughput import kafka_rate, subscribed_topic  # noqa: E402
from benchmarks.saga_latency import SAGA_SERVICES, book, latency  # noqa: E402
from restate_tutorial.lab import IngressError, Lab, LabError  # noqa: E402
from restate_tutorial.patterns import event_transactions  # noqa: E402
from restate_tutorial.scenarios import GOOD_BOOKING  # noqa: E402

RUNS = sized(50, 3)
KILLS = sized(3, 1)
PAUSE_SECONDS = sized(10.0, 1.0)
PAUSES = sized(2, 1)  # per kind of node paused


def failover_seconds(lab: Lab, node: int) -> float:
    """SIGKILL ``node`` (the one the client uses), then book until a booking succeeds."""
    book(lab, GOOD_BOOKING)
    killed = time.perf_counter()
    lab.cluster.node(node).kill()
    while True:
        try:
            book(lab, GOOD_BOOKING)
            return time.perf_counter() - killed
        except (IngressError, LabError):
            time.sleep(0.05)


def pause_stall_seconds(lab: Lab, node: int) -> float:
    """SIGSTOP ``node`` for PAUSE_SECONDS (a frozen VM, a long GC pause) while bookings run
    one after another: the longest time in which no booking completed."""
    completed: list[float] = []
    stop = threading.Event()

    def keep_booking() -> None:
        while not stop.is_set():
            try:
                book(lab, GOOD_BOOKING, timeout=60)
                completed.append(time.monotonic())
            except (IngressError, LabError):
                time.sleep(0.05)

    booking = threading.Thread(target=keep_booking)
    booking.start()
    time.sleep(sized(1, 0.2))
    pid = lab.cluster.node(node).pid
    assert pid is not None
    paused = time.monotonic()
    os.kill(pid, signal.SIGSTOP)
    time.sleep(PAUSE_SECONDS)
    os.kill(pid, signal.SIGCONT)
    resumed = time.monotonic()
    time.sleep(sized(3, 0.5))
    stop.set()
    booking.join()
    marks = sorted([paused, resumed, *(t for t in completed if paused < t < resumed + 3)])
    return max(later - earlier for earlier, later in zip(marks, marks[1:], strict=False))


def measure(nodes: int) -> dict[str, float]:
    with Lab([*SAGA_SERVICES, event_transactions.user_feed], nodes=nodes) as lab:
        saga = latency(lab, GOOD_BOOKING, False, RUNS)
        topic, _ = subscribed_topic(lab)
        figures = {"saga_p50_ms": saga["p50_ms"], "saga_p99_ms": saga["p99_ms"],
                   "kafka_events_per_s": round(kafka_rate(lab, topic, 10), 1)}
        if nodes > 1:
            times = []
            for _ in range(KILLS):
                talking_to = lab.cluster.admin_urls.index(lab.admin.url) + 1
                times.append(failover_seconds(lab, talking_to))
                lab.cluster.node(talking_to).start()
            figures["failover_s_median"] = round(sorted(times)[len(times) // 2], 2)
            figures["failover_s_max"] = round(max(times), 2)
            for which in ("client's node", "another node"):
                stalls = []
                for _ in range(PAUSES):
                    talking_to = lab.cluster.ingress_urls.index(lab.ingress.url) + 1
                    node = talking_to if which == "client's node" else talking_to % nodes + 1
                    stalls.append(pause_stall_seconds(lab, node))
                figures[f"pause_stall_s_max ({which})"] = round(max(stalls), 2)
    return figures


def main() -> None:
    one, three = measure(1), measure(3)
    print(f"1 node vs 3 nodes (replication 2); saga over {RUNS} runs, Kafka 300 events/10 keys")
    print(f"  saga p50           {one['saga_p50_ms']:7.1f} ms  {three['saga_p50_ms']:7.1f} ms"
          f"   ratio {three['saga_p50_ms'] / one['saga_p50_ms']:.2f}")
    print(f"  saga p99           {one['saga_p99_ms']:7.1f} ms  {three['saga_p99_ms']:7.1f} ms"
          f"   ratio {three['saga_p99_ms'] / one['saga_p99_ms']:.2f}")
    kafka_one, kafka_three = one["kafka_events_per_s"], three["kafka_events_per_s"]
    print(f"  Kafka events/s     {kafka_one:7.1f}     {kafka_three:7.1f}"
          f"      ratio {kafka_three / kafka_one:.2f}")
    print(f"  SIGKILL → next successful call via a surviving node: median "
          f"{three['failover_s_median']} s, max {three['failover_s_max']} s ({KILLS} kills)")
    for which in ("client's node", "another node"):
        print(f"  {which} SIGSTOPped for {PAUSE_SECONDS:g} s, bookings running: longest time "
              f"without a completed booking {three[f'pause_stall_s_max ({which})']} s "
              f"(of {PAUSES} tries)")
    report("cluster_failover", {"one_node": one, "three_nodes": three},
           {"saga p50, 3 nodes / 1 node (×)": three["saga_p50_ms"] / one["saga_p50_ms"],
            "Kafka events/s, 3 nodes / 1 node (×)": kafka_three / kafka_one,
            "SIGKILL → next call via another node, median (s)": three["failover_s_median"]})


if __name__ == "__main__":
    main()
