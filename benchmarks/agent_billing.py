"""The durable agent's bill (figures only): model calls billed for one turn that searches and
books, without a crash and with a crash after each entry of the turn's journal in turn
(restate-server SIGKILLed; the service host crashed).

    .venv/bin/python benchmarks/agent_billing.py
"""

from __future__ import annotations

import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import report, sized  # noqa: E402
from restate_tutorial.crashes import MODES, CrashReport, crash_test  # noqa: E402
from restate_tutorial.lab import Lab  # noqa: E402
from restate_tutorial.patterns import agent, approvals, fan_out, sagas  # noqa: E402
from restate_tutorial.scenarios import serve_scripted_model  # noqa: E402
from restate_tutorial.simulated import model, quotes, travel  # noqa: E402

TURNS = sized(10, 1)
CRASH_AFTER = sized(None, 1)  # crash after every entry of the turn; quick: the first
TEXT = "flights from AMS to LIS, book it for Ada Lovelace"
SERVICES = [agent.travel_agent, fan_out.fare_search, fan_out.airlines, fan_out.airline_permits,
            sagas.flights, sagas.car_rentals, sagas.booking_workflow, approvals.trip_approval]


def reset() -> None:
    for simulated in (model, quotes, travel):
        simulated.reset()


def main() -> None:
    serve_scripted_model()
    model.LATENCY = 0.05
    with Lab(SERVICES) as lab:
        reset()
        started = time.perf_counter()
        for _ in range(TURNS):
            lab.ingress.call("TravelAgent", "Message", {"text": TEXT}, key=uuid.uuid4().hex)
        took = (time.perf_counter() - started) / TURNS
        bill = model.bill()
        print(f"no crash: {TURNS} turns, {bill['calls']} model calls billed "
              f"({bill['calls'] / TURNS:g} a turn), {bill['repeated']} repeated, "
              f"{bill['tokens'] / TURNS:.0f} tokens a turn, {took:.2f} s a turn")
        figures: dict[str, Any] = {"turns": TURNS, "calls_a_turn": bill["calls"] / TURNS,
                                   "repeated": bill["repeated"],
                                   "tokens_a_turn": bill["tokens"] / TURNS, "crashed": {}}
        for mode in MODES:
            crashes, bills = crash_runs(lab, mode)
            bills = bills[1:]  # the first run is crash_test's own, without a crash
            repeats = Counter(int(b["repeated"]) for b in bills)
            print(f"{mode}, after each of {len(bills)} entries: {len(bills)} runs, "
                  f"{sum(b['calls'] for b in bills):g} model calls billed "
                  f"({sum(b['calls'] - b['repeated'] for b in bills):g} first asks + "
                  f"{sum(b['repeated'] for b in bills):g} repeats); runs by repeats: "
                  f"{dict(sorted(repeats.items()))}; broken: {len(crashes.broken)}")
            figures["crashed"][mode] = {
                "runs": len(bills), "calls": sum(b["calls"] for b in bills),
                "repeats": sum(b["repeated"] for b in bills), "broken": len(crashes.broken)}
    worst = max(figures["crashed"].values(), key=lambda c: c["repeats"])
    report("agent_billing", figures,
           {"model calls billed a turn, no crash": bill["calls"] / TURNS,
            "model calls billed again per crashed turn (worst mode)":
                worst["repeats"] / max(worst["runs"], 1),
            "crashed turns broken": sum(c["broken"] for c in figures["crashed"].values())})


def crash_runs(lab: Lab, mode: str) -> tuple[CrashReport, list[dict[str, float]]]:
    """The turn crashed after each entry in turn, and the model's bill of each run."""
    bills: list[dict[str, float]] = []

    def start(run: str) -> str:
        reset()
        return lab.ingress.send("TravelAgent", "Message", {"text": TEXT}, key=uuid.uuid4().hex)

    def check(run: str, invocation_id: str) -> None:
        lab.ingress.attach(invocation_id)
        bills.append(model.bill())

    return crash_test(lab, start, check, modes=[mode], most_entries=CRASH_AFTER), bills

if __name__ == "__main__":
    main()
