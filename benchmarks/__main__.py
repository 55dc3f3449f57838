"""Every benchmark, one after another, then a closing table of their headline figures.

    .venv/bin/python -m benchmarks            # `make bench`
    .venv/bin/python -m benchmarks --quick    # the smoke run: tiny counts, figures meaningless

Each script runs in a process of its own, its output shown as it comes; one that fails is named
with its reason, and the others still run. The exit status is 1 if any failed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SCRIPTS = sorted(p for p in HERE.glob("*.py") if p.stem not in ("__init__", "__main__", "common"))


@dataclass
class Outcome:
    name: str
    seconds: float
    result: dict[str, Any] | None = None
    failure: str = ""
    tail: list[str] = field(default_factory=list)


def run(script: Path, args: list[str]) -> Outcome:
    """Run one benchmark; its last JSON line naming it is its result."""
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, str(script), *args], cwd=HERE.parent,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    outcome = Outcome(script.stem, 0.0)
    assert process.stdout is not None
    for line in process.stdout:
        print(line, end="", flush=True)
        outcome.tail = [*outcome.tail[-4:], line.rstrip()]
        if line.startswith("{"):
            try:
                parsed = json.loads(line)
            except ValueError:
                continue
            if parsed.get("benchmark") == script.stem:
                outcome.result = parsed
    code = process.wait()
    outcome.seconds = time.monotonic() - started
    if code != 0:
        last = next((line for line in reversed(outcome.tail) if line.strip()), "no output")
        outcome.failure = f"exited with status {code}: {last}"
    elif outcome.result is None:
        outcome.failure = f'printed no JSON line {{"benchmark": "{script.stem}", …}}'
    return outcome


def table(outcomes: list[Outcome]) -> str:
    rows = []
    for outcome in outcomes:
        if outcome.failure:
            rows.append((f"{outcome.name} ({outcome.seconds:.0f} s)", "FAILED", outcome.failure))
            continue
        headline = (outcome.result or {}).get("headline", {})
        for n, (figure, value) in enumerate(headline.items()):
            name = f"{outcome.name} ({outcome.seconds:.0f} s)"
            rows.append((name if n == 0 else "", figure, f"{value:g}"))
    width = [max(len(row[i]) for row in rows) for i in range(2)]
    return "\n".join(f"  {a:<{width[0]}}  {b:<{width[1]}}  {c}" for a, b, c in rows)


def main(argv: list[str], scripts: list[Path] = SCRIPTS) -> int:
    """``argv``: benchmark names to run (default: all), and flags for each (``--quick``)."""
    names = [a for a in argv if not a.startswith("-")]
    flags = [a for a in argv if a.startswith("-")]
    scripts = [s for s in scripts if not names or s.stem in names]
    outcomes = []
    for script in scripts:
        print(f"== {script.stem}", flush=True)
        outcomes.append(run(script, flags))
    failed = [o for o in outcomes if o.failure]
    mode = " (quick: smoke run, figures meaningless)" if "--quick" in flags else ""
    print(f"\nHeadline figures{mode}:\n{table(outcomes)}")
    print(f"\n{len(outcomes) - len(failed)} of {len(outcomes)} benchmarks ran to the end in "
          f"{sum(o.seconds for o in outcomes):.0f} s" +
          (f"; failed: {', '.join(o.name for o in failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
