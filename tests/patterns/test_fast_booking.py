"""The saga shaped for speed: the same outcomes as BookingWorkflow, in one invocation."""

from __future__ import annotations

import uuid

import pytest

from restate_tutorial.lab import IngressError, Lab
from restate_tutorial.patterns.fast_booking import fast_booking_workflow
from restate_tutorial.scenarios import GOOD_BOOKING, SEED_BOOKING
from restate_tutorial.simulated import travel

from ..ledgers import one_saga, saga_history

pytestmark = pytest.mark.usefixtures("fresh_ledgers")


@pytest.fixture(scope="module")
def fast(lab: Lab) -> Lab:
    lab.serve(fast_booking_workflow)
    return lab


def book(lab: Lab, body: dict) -> dict:
    return lab.ingress.call("FastBookingWorkflow", "Run", body, key=f"fast-{uuid.uuid4().hex}")


def calls_made(lab: Lab) -> int:
    """How many invocations FastBookingWorkflow runs have called (none: it calls no service)."""
    return lab.admin.sql("SELECT count(*) AS n FROM sys_invocation WHERE invoked_by_service_name"
                         " = 'FastBookingWorkflow'")[0]["n"]


def test_success_books_everything_once_in_one_invocation(fast: Lab) -> None:
    result = book(fast, GOOD_BOOKING)
    assert result["card"] == "************4444" and result["amount"] == 1500
    assert saga_history() == one_saga(declined=False)
    assert travel.flights.status(result["flight_reservation"]) == "confirmed"
    assert calls_made(fast) == 0


def test_declined_payment_undoes_everything_in_reverse(fast: Lab) -> None:
    with pytest.raises(IngressError, match="402"):
        book(fast, SEED_BOOKING)
    assert saga_history() == one_saga(declined=True)
    undo = (travel.payments.ledger.entries("refund") + travel.car_rentals.ledger.entries("cancel")
            + travel.flights.ledger.entries("cancel"))
    ordered = sorted(undo, key=lambda entry: entry["at"])
    assert [e["system"] for e in ordered] == ["payments", "car-rentals", "flights"]


def test_a_lost_answer_is_repeated_without_a_second_effect(fast: Lab) -> None:
    """The lost answers make their steps run again. The car's reservation, running next to the
    flight's when that attempt failed, may run again too: concurrent steps share an attempt.
    Every repeat is recognised by its key, so each effect happens once."""
    travel.flights.failures.lose_answer_next("reserve")
    travel.payments.failures.lose_answer_next("charge")
    book(fast, GOOD_BOOKING)
    history = saga_history()
    assert "reserve (repeated)" in history["flights"]
    assert "charge (repeated)" in history["payments"]
    effects = {system: [h for h in actions if "(repeated)" not in h]
               for system, actions in history.items()}
    assert effects == one_saga(declined=False)
