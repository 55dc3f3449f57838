"""Cost of one journaled step, against this machine's floor; and rendering a 1,000-entry journal.

A handler runs N trivial `ctx.run_typed` steps (N = 1, 10, 100); the per-step cost is the
slope between N = 1 and N = 100. The floor: one loopback HTTP round trip (keep-alive) and one
fdatasync of a small write, each measured here in the same run. Then the journal view of an
invocation with 1,000+ entries: SQL fetch, text rendering and HTML rendering, timed apart.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import restate
from restate import Context, RunOptions

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import report, sized  # noqa: E402
from restate_tutorial import views  # noqa: E402
from restate_tutorial.lab import Lab  # noqa: E402

steps = restate.Service("Steps")


def _nothing(i: int) -> int:
    return i


@steps.handler()
async def run(ctx: Context, n: int) -> int:
    for i in range(n):
        await ctx.run_typed("step", _nothing, RunOptions(), i)
    return n


def median_ms(action, repeat: int) -> float:  # noqa: ANN001
    for _ in range(3):
        action()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def fdatasync_ms() -> float:
    with tempfile.NamedTemporaryFile() as file:
        def write_and_sync() -> None:
            file.write(b"x" * 128)
            file.flush()
            os.fdatasync(file.fileno())
        return median_ms(write_and_sync, sized(200, 5))


def main() -> None:
    figures: dict[str, float] = {}
    with Lab([steps]) as lab:
        for n in (1, 10, 100):
            figures[f"handler_{n}_steps_ms"] = median_ms(
                lambda n=n: lab.ingress.call("Steps", "run", n), sized(30 if n < 100 else 10, 2))
        per_step = (figures["handler_100_steps_ms"] - figures["handler_1_steps_ms"]) / 99
        figures["per_step_ms"] = per_step
        with httpx.Client() as client:
            figures["loopback_http_round_trip_ms"] = median_ms(
                lambda: client.get(f"{lab.server.admin_url}/health"), sized(200, 5))
        figures["fdatasync_ms"] = fdatasync_ms()

        invocation = lab.ingress.send("Steps", "run", sized(510, 20))
        lab.ingress.attach(invocation, timeout=300)
        started = time.perf_counter()
        journal = views.journal(lab.admin, invocation)
        figures["journal_entries"] = len(journal)
        figures["journal_fetch_ms"] = (time.perf_counter() - started) * 1000
        figures["journal_text_ms"] = median_ms(lambda: str(journal), sized(5, 1))
        figures["journal_html_ms"] = median_ms(lambda: journal._repr_html_(), sized(5, 1))

    figures = {k: round(v, 2) for k, v in figures.items()}
    print("Journaled steps (ms, median)")
    for n in (1, 10, 100):
        print(f"  handler with {n:>3} steps        {figures[f'handler_{n}_steps_ms']:8.2f}")
    print(f"  per step (slope 1→100)        {figures['per_step_ms']:8.2f}")
    print(f"  floor: loopback HTTP round trip {figures['loopback_http_round_trip_ms']:6.2f}")
    print(f"  floor: fdatasync              {figures['fdatasync_ms']:8.2f}")
    ratio = per_step / figures["loopback_http_round_trip_ms"]
    print(f"  per step / HTTP round trip    {ratio:8.1f}×")
    print(f"Journal view of {int(figures['journal_entries'])} entries: fetch "
          f"{figures['journal_fetch_ms']:.1f} ms, text {figures['journal_text_ms']:.1f} ms, "
          f"HTML {figures['journal_html_ms']:.1f} ms")
    report("step_overhead", figures,
           {"per step / loopback HTTP round trip (×)": ratio,
            "per step / fdatasync (×)": per_step / figures["fdatasync_ms"],
            "per step (ms)": figures["per_step_ms"]})


if __name__ == "__main__":
    main()
