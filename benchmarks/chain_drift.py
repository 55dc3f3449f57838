"""How far a recurring chain of delayed calls drifts: PriceWatch with a 1 s period, 60 ticks
(figures only). Each tick schedules the next one 1 s after it ran, so the lateness of every
tick adds up; the cron recipe (CronJob) schedules each run at its slot instead, so it does not.

    .venv/bin/python benchmarks/chain_drift.py
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import report, sized  # noqa: E402
from restate_tutorial.lab import Lab, wait_until  # noqa: E402
from restate_tutorial.patterns import schedules  # noqa: E402
from restate_tutorial.simulated import fares, mailer  # noqa: E402

TICKS = sized(60, 4)


def main() -> None:
    with Lab([schedules.price_watch, schedules.cron_job]) as lab:
        lab.ingress.call("PriceWatch", "Start", {"every_seconds": 1, "below": 1,
                                                 "notify": "nobody"}, key="drift")
        lab.ingress.call("CronJob", "Start", {"every_seconds": 1}, key="drift")
        wait_until(lambda: fares.ledger.count("check") >= TICKS, TICKS * 3, f"{TICKS} ticks")
        lab.ingress.call("PriceWatch", "Stop", key="drift")
        lab.ingress.call("CronJob", "Stop", key="drift")
    ticks = [e["at"] for e in fares.ledger.entries("check")][:TICKS]
    gaps = [b - a for a, b in zip(ticks, ticks[1:], strict=False)]
    runs = mailer.ledger.entries("notify", to="ops-drift")
    late = [e["at"] - float(e["body"].removeprefix("slot ")) for e in runs]
    figures = {
        "chain_ticks": len(ticks),
        "chain_drift_s": round(ticks[-1] - ticks[0] - (len(ticks) - 1), 3),
        "chain_gap_mean_s": round(statistics.mean(gaps), 4),
        "chain_gap_max_s": round(max(gaps), 4),
        "cron_runs": len(runs),
        "cron_lateness_mean_s": round(statistics.mean(late), 4),
        "cron_lateness_max_s": round(max(late), 4),
    }
    for name, value in figures.items():
        print(f"  {name}: {value}")
    report("chain_drift", figures,
           {f"chain of delayed calls: drift over {len(ticks)} ticks (s)": figures["chain_drift_s"],
            "cron recipe: mean lateness of a run (s)": figures["cron_lateness_mean_s"]})


if __name__ == "__main__":
    main()
