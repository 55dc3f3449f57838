"""What every benchmark shares: its quick mode and the one JSON line it ends with.

``--quick`` (on any script's command line) runs the same code with tiny counts: a smoke run of
a few seconds that proves the benchmark still imports, starts and reports — `make test` runs
every benchmark that way. Its figures mean nothing.
"""

from __future__ import annotations

import json
import sys
from typing import Any, TypeVar

QUICK = "--quick" in sys.argv[1:]

T = TypeVar("T")


def sized(full: T, quick: T) -> T:
    """``full`` for a real run, ``quick`` for the smoke run."""
    return quick if QUICK else full


def report(name: str, figures: dict[str, Any], headline: dict[str, float]) -> None:
    """The benchmark's last line: ``{"benchmark": name, "quick": …, **figures, "headline": …}``.

    ``headline`` holds the few figures `make bench`'s closing table shows, each named with its
    unit or, for a ratio, what it divides by what (e.g. "saga p50, Restate / DBOS (×)")."""
    print(json.dumps({"benchmark": name, "quick": QUICK, **figures,
                      "headline": {k: round(v, 3) for k, v in headline.items()}}), flush=True)
