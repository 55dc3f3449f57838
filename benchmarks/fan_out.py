"""Many at once (figures only): five quote calls at once vs the same five one after another,
and 50 fare searches at once with and without a limit per airline.

    .venv/bin/python benchmarks/fan_out.py
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import restate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from restate_tutorial.lab import Lab  # noqa: E402
from restate_tutorial.patterns import fan_out  # noqa: E402
from restate_tutorial.scenarios import searches_at_once  # noqa: E402
from restate_tutorial.simulated import quotes  # noqa: E402

RUNS = 10
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
        unlimited = searches_at_once(lab, 50, "SearchUnlimited")
        limited = searches_at_once(lab, 50, "Search")
    print(json.dumps({
        "airline_latency_s": quotes.DEFAULT_LATENCY,
        "five_quotes_at_once_median_s": round(at_once, 3),
        "five_quotes_in_sequence_median_s": round(in_sequence, 3),
        "sequence_over_at_once": round(in_sequence / at_once, 2),
        "50_searches_without_limit": unlimited,
        "50_searches_with_permits": limited,
    }, indent=2))


if __name__ == "__main__":
    main()
