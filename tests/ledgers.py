"""What the simulated systems saw, in a form that shows a repeat: every entry, in order.

``Ledger.count("charge")`` would not see a ``charge (repeated)``, nor a second ``cancel`` whose
effect was "already cancelled"; ``Ledger.history()`` does. These helpers compare the whole
history of a booking with what should have happened.
"""

from __future__ import annotations

from restate_tutorial.simulated import travel

saga_history = travel.saga_history


def one_saga(declined: bool) -> dict[str, list[str]]:
    """The history of one booking, each step once (the declined card: undone in reverse)."""
    if declined:
        return {"flights": ["reserve", "cancel [cancelled]"],
                "car-rentals": ["reserve", "cancel [cancelled]"],
                "payments": ["decline", "refund [nothing was charged]"]}
    return {"flights": ["reserve", "confirm"], "car-rentals": ["reserve", "confirm"],
            "payments": ["charge"]}


def assert_nothing_repeated_since(at_crash: dict[str, list[str]], declined: bool) -> None:
    """The strong form of "a crash repeats nothing": every system's history is what it was when
    the crash happened, followed only by the steps not done yet — no entry of any kind (not even
    a deduplicated "(repeated)" one) for a step that was journaled before the crash."""
    now, expected = saga_history(), one_saga(declined)
    for system, before in at_crash.items():
        assert now[system][:len(before)] == before, (system, before, now[system])
    assert now == expected, f"expected {expected}, got {now}"


def saga_effects() -> dict[str, list[str]]:
    """``saga_history()`` without the calls that had no effect of their own: a repeat with the
    same key ("(repeated)", "already …", a second refund of nothing), as after a crash between a
    step and its journal entry."""
    def effects(steps: list[str]) -> list[str]:
        kept: list[str] = []
        for step in steps:
            no_op_again = step in kept and step.endswith("[nothing was charged]")
            if "(repeated)" not in step and "[already" not in step and not no_op_again:
                kept.append(step)
        return kept

    return {system: effects(steps) for system, steps in saga_history().items()}
