"""Many at once (figures only): five quote calls at once vs the same five one after another,
and 50 fare searches at once with and without a limit per airline.

    .venv/bin/python benchmarks/fan_out.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any

import restate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import report, sized  # noqa: E402
from restate_tutorial.lab import Lab  # noqa: E402
from restate_tutorial.patterns import fan_out  # noqa: E402
from restate_tutorial.scenarios import searches_at_once  # noqa: E402
from restate_tutorial.simulated import quotes  # noqa: E402

RUNS = sized(10, 1)
SEARCHES = sized(50, 5)
one_by_one = restate.Service("SequentialFareSearch")


@one_by_one.handler(name="Search")
async def search_in_sequence(ctx: restate.Context, request: dict[str, str]) -> list[Any]:
    """The same five quotes, each awaited before the next is asked."""
    return [await ctx.service_call(fan_out.quote_with_permit,
                                   arg={"airline": airline, "route": request["route"]})
            for airline in quotes.AIRLINES]


def median_seconds(call: Any) -> float:
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    with Lab([fan_out.fare_search, fan_out.airlines, fan_out.airline_permits,
              one_by_one]) as lab:
        at_once = median_seconds(lambda: lab.ingress.call(
            "FareSearch", "Search", {"route": "AMS-LIS"}))
        in_sequence = median_seconds(lambda: lab.ingress.call(
            "SequentialFareSearch", "Search", {"route": "AMS-LIS"}))
        unlimited = searches_at_once(lab, SEARCHES, "SearchUnlimited")
        limited = searches_at_once(lab, SEARCHES, "Search")
    figures = {
        "airline_latency_s": quotes.DEFAULT_LATENCY,
        "five_quotes_at_once_median_s": round(at_once, 3),
        "five_quotes_in_sequence_median_s": round(in_sequence, 3),
        "sequence_over_at_once": round(in_sequence / at_once, 2),
        "searches_without_limit": unlimited,
        "searches_with_permits": limited,
    }
    for name, value in figures.items():
        print(f"  {name}: {value}")
    report("fan_out", figures,
           {"five quotes in sequence / at once (×)": in_sequence / at_once,
            f"{SEARCHES} searches: an airline's most calls at once, no limit":
                unlimited["most at once (an airline)"],
            f"{SEARCHES} searches: an airline's most calls at once, with permits":
                limited["most at once (an airline)"]})


if __name__ == "__main__":
    main()
