"""SecureBooking: a saga step that waits on an awakeable, which another system (the simulated
bank) completes later over Restate's HTTP API — or rejects, or never answers."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from restate_tutorial.lab import IngressError, Lab, wait_until
from restate_tutorial.scenarios import GOOD_CARD, booking
from restate_tutorial.simulated import bank, travel

pytestmark = pytest.mark.usefixtures("fresh_ledgers")

UNDONE = {"flights": ["reserve", "cancel [cancelled]"],
          "car-rentals": ["reserve", "cancel [cancelled]"], "payments": []}


def book(lab: Lab, card: str = GOOD_CARD, **more: Any) -> tuple[str, str]:
    trip = f"secure-{uuid.uuid4().hex[:8]}"
    invocation = lab.ingress.send("SecureBooking", "Run", booking(card, **more), key=trip)
    return trip, invocation


def outcome(lab: Lab, invocation: str) -> Any:
    return lab.ingress.outcome(invocation, timeout=60)


def test_the_bank_approves_later_over_http_and_the_trip_is_booked(lab: Lab) -> None:
    _, invocation = book(lab)
    result = outcome(lab, invocation)
    assert result["card"] == "************4444"
    assert [e["answer"] for e in bank.ledger.entries("verify")] == ["approve"]
    assert [(e["answer"], e["status"]) for e in bank.ledger.entries("answer")] == [
        ("approve", 202)]  # accepted by /restate/awakeables/<id>/resolve
    assert travel.saga_history() == {"flights": ["reserve", "confirm"],
                                     "car-rentals": ["reserve", "confirm"],
                                     "payments": ["charge"]}


def test_a_declined_check_is_402_and_the_saga_is_undone(lab: Lab) -> None:
    card = "5105105105105100"
    bank.script(card, "decline")
    _, invocation = book(lab, card)
    failed = outcome(lab, invocation)
    assert failed.status == 402
    assert failed.message == "3-D Secure declined: the card holder declined the payment"
    assert travel.saga_history() == UNDONE  # nothing was charged


def test_no_answer_in_time_is_408_and_the_saga_is_undone(lab: Lab) -> None:
    card = "4000000000003220"
    bank.script(card, "ignore")
    _, invocation = book(lab, card, verify_seconds=1)
    failed = outcome(lab, invocation)
    assert failed.status == 408 and "did not answer within 1 s" in failed.message
    assert travel.saga_history() == UNDONE


@pytest.mark.lab_restate
def test_restate_crashing_while_the_bank_thinks_loses_nothing(
        lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """restate-server SIGKILLed while the booking waits for the bank, and still down when the
    bank answers: the bank tries again until Restate is back; the trip is booked, the bank
    asked once, the card charged once."""
    monkeypatch.setattr(bank, "answer_seconds", 2.0)  # time to crash before it answers
    _, invocation = book(lab)
    # The bank asked, and that step journaled (the wait for its answer comes next): a kill
    # before the journal entry would run the step again, which the bank takes for a repeat.
    lab.admin.wait_for_entry(invocation, "Command: Sleep")
    lab.server.kill()
    try:
        wait_until(lambda: bank.ledger.count("answer (Restate unreachable, retrying)") > 0, 30,
                   "the bank's answer to find Restate down")
    finally:
        lab.server.start()
    result = outcome(lab, invocation)
    assert result["amount"] == 1500
    history = bank.ledger.history()
    assert history[0] == "verify" and history[-1] == "answer" and history.count("verify") == 1
    assert travel.saga_history()["payments"] == ["charge"]


def test_cancelled_while_it_waits_for_the_bank_is_409_and_undone(lab: Lab) -> None:
    card = "4000000000003238"
    bank.script(card, "ignore")
    _, invocation = book(lab, card)
    wait_until(lambda: bank.ledger.count("verify") == 1, 30, "the bank to be asked")
    lab.admin.cancel(invocation)
    failed = outcome(lab, invocation)
    assert failed.status == 409
    assert travel.saga_history() == UNDONE


def test_a_malformed_verify_timeout_is_400_before_anything_is_reserved(lab: Lab) -> None:
    with pytest.raises(IngressError) as refused:
        lab.ingress.call("SecureBooking", "Run", booking(GOOD_CARD, verify_seconds=0),
                         key=f"bad-{uuid.uuid4().hex[:8]}")
    assert refused.value.status == 400 and "verify_seconds" in refused.value.message
    assert travel.flights.ledger.count() == 0 and bank.ledger.count() == 0


@pytest.mark.parametrize("forged", [
    pytest.param(b'"approved"', id="the old answer"),
    pytest.param(b'{"answer": "approved"}', id="no request id"),
    pytest.param(b'{"request_id": "guess", "answer": "approved"}', id="a guessed request id"),
    pytest.param(b"approved", id="not JSON"),
])
def test_an_answer_that_is_not_the_banks_declines_and_charges_nothing(
        lab: Lab, monkeypatch: pytest.MonkeyPatch, forged: bytes) -> None:
    """Someone who learned the awakeable id answers before the bank: without the request id
    the bank was given, the answer is not taken for an approval — 402, the saga undone."""
    callbacks: list[str] = []
    verify = bank.verify

    def bank_that_shows_its_callback(card: str, amount: float, callback: str,
                                     request_id: str) -> None:
        callbacks.append(callback)
        verify(card, amount, callback, request_id)

    monkeypatch.setattr(bank, "verify", bank_that_shows_its_callback)
    card = "4000000000003220"
    bank.script(card, "ignore")  # the bank never answers: only the forger does
    _, invocation = book(lab, card)
    wait_until(lambda: bool(callbacks), 30, "the bank to be asked")
    forger = httpx.post(f"{lab.server.ingress_url}/restate/awakeables/{callbacks[0]}/resolve",
                        content=forged, headers={"content-type": "application/json"})
    assert forger.status_code == 202, forger.text
    failed = outcome(lab, invocation)
    assert failed.status == 402 and "not the bank's" in failed.message, failed
    assert travel.saga_history() == UNDONE
