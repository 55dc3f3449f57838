"""The "Your turn" exercises: each starter cell, run as the notebook has it, serves a service
whose check says "not yet" with what was expected, what happened and a hint; each solution in
restate_tutorial.course.solutions passes its check."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import nbformat
import pytest
import restate
from restate import ObjectContext

from restate_tutorial.course import exercises
from restate_tutorial.course.exercises import CheckResult, checking
from restate_tutorial.course.solutions import (
    delivery_tracker,
    early_updates,
    hotel_saga,
    loyalty_points,
    patient_feed,
    strict_feed,
)
from restate_tutorial.lab import Lab
from restate_tutorial.patterns import event_transactions
from restate_tutorial.simulated import travel

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"

EXERCISES: dict[str, tuple[Callable[[Lab], CheckResult], ModuleType, str]] = {
    "1.1": (exercises.check_loyalty_points, loyalty_points, "loyalty_bonus"),
    "1.2": (exercises.check_hotel_saga, hotel_saga, "trip_with_hotel"),
    "2.1": (exercises.check_backoff, patient_feed, "patient_user_feed"),
    "2.2": (exercises.check_give_up, strict_feed, "strict_user_feed"),
    "3.1": (exercises.check_delivered, delivery_tracker, "delivery_tracker"),
    "3.2": (exercises.check_early_updates, early_updates, "early_bird_tracker"),
}

pytestmark = pytest.mark.usefixtures("fresh_ledgers")


def starters() -> dict[str, str]:
    """The starter cells of the notebooks, by exercise number."""
    found = {}
    for path in sorted(NOTEBOOKS.glob("0[1-3]_*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if "exercise-starter" in cell.metadata.get("tags", []):
                found[cell.metadata["exercise"]] = cell.source
    return found


def test_notebooks_01_to_03_have_two_exercises_each() -> None:
    assert sorted(starters()) == sorted(EXERCISES)
    for number, source in starters().items():
        assert "# TODO" in source and "lab.serve(" in source, number


@pytest.mark.parametrize("number", list(EXERCISES))
def test_the_starter_runs_and_its_check_says_not_yet_with_a_hint(lab: Lab, number: str) -> None:
    check, _, _ = EXERCISES[number]
    namespace: dict[str, Any] = {"lab": lab, "travel": travel,
                                 "event_transactions": event_transactions}
    exec(compile(starters()[number], f"starter {number}", "exec"), namespace)  # noqa: S102
    result = check(lab)
    assert not result.passed
    assert result.expected and result.happened and result.hint
    shown = str(result)
    assert shown.startswith("✗ Exercise") and "AssertionError" not in shown
    assert "hint:" in shown and "<table>" in result._repr_html_()


@pytest.mark.parametrize("number", list(EXERCISES))
def test_the_solution_passes_its_check(lab: Lab, number: str) -> None:
    check, solution, service = EXERCISES[number]
    lab.serve(getattr(solution, service))
    result = check(lab)
    assert result.passed, str(result)
    assert str(result).startswith("✓ Exercise")


def test_a_check_of_a_service_never_served_says_so() -> None:
    with Lab([]) as empty:
        result = exercises.check_delivered(empty)
    assert not result.passed and "HTTP 404" in result.happened
    assert "lab.serve" in result.hint


def test_a_handler_that_raises_or_hangs_does_not_wedge_the_lab(
        lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check gives up after a bounded time, saying why; the lab keeps serving; serving a
    fixed version (running the cell again) replaces the broken one."""
    monkeypatch.setattr(checking, "ANSWER_SECONDS", 3.0)
    broken = restate.VirtualObject("DeliveryTracker")

    @broken.handler(name="RegisterPackage")
    async def register(ctx: ObjectContext, request: dict) -> None:
        ctx.set("package-info", {"finalDestination": request["finalDestination"],
                                 "locations": [], "delivered": False})

    @broken.handler(name="UpdateLocation")
    async def update(ctx: ObjectContext, request: dict) -> None:
        raise RuntimeError("a learner's bug")  # not terminal: Restate retries it, forever

    lab.serve(broken)
    result = exercises.check_delivered(lab)
    assert not result.passed and "No answer" in result.happened
    assert "run its cell again" in result.hint
    assert lab.ingress.call("Greeter", "greet", {"name": "still", "delay_seconds": 0})
    lab.serve(delivery_tracker.delivery_tracker)
    assert exercises.check_delivered(lab).passed
