"""Lab figures: cold start of each part, and Kafka subscription → first event handled.

Run with `make bench` (binaries already installed by `make setup`). Prints a table and one
JSON line. Not a test: figures on a shared machine vary; compare ratios within one run.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import report, sized  # noqa: E402
from benchmarks.kafka_throughput import subscribed_topic  # noqa: E402
from restate_tutorial.lab import Lab  # noqa: E402
from restate_tutorial.scenarios import SERVICES  # noqa: E402

RUNS = sized(5, 1)


def one_start() -> dict[str, float]:
    lab = Lab(SERVICES)
    marks: dict[str, float] = {}
    t0 = time.perf_counter()
    lab.broker.start()
    marks["broker"] = time.perf_counter() - t0
    t = time.perf_counter()
    lab.server.start()
    marks["restate-server"] = time.perf_counter() - t
    t = time.perf_counter()
    lab.host.start()
    marks["service host"] = time.perf_counter() - t
    t = time.perf_counter()
    lab.start()  # what is left: registration of the deployment and the Kafka cluster
    marks["registration"] = time.perf_counter() - t
    marks["lab ready (total)"] = time.perf_counter() - t0

    _, marks["subscription → first event"] = subscribed_topic(lab)
    lab.stop()
    return marks


def main() -> None:
    runs = [one_start() for _ in range(RUNS)]
    print(f"Lab figures, median of {RUNS} runs (seconds)")
    summary = {}
    for name in runs[0]:
        values = [r[name] for r in runs]
        summary[name] = round(statistics.median(values), 3)
        print(f"  {name:<28} {summary[name]:>7.3f}"
              f"   (min {min(values):.3f}, max {max(values):.3f})")
    report("lab_startup", {"runs": RUNS, "median_seconds": summary},
           {"lab ready, median (s)": summary["lab ready (total)"],
            "subscription → first event, median (s)": summary["subscription → first event"]})


if __name__ == "__main__":
    main()
