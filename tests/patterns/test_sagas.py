"""The trip-booking saga against the real lab: compensations, retries, crashes, cancellation."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from restate_tutorial import views
from restate_tutorial.lab import IngressError, Lab
from restate_tutorial.logbook import logbook
from restate_tutorial.scenarios import GOOD_CARD, SEED_BOOKING, booking
from restate_tutorial.simulated import travel

from ..ledgers import assert_nothing_repeated_since, one_saga, saga_history
from ..services import call_as_a_handler


def trip() -> str:
    return f"trip-{uuid.uuid4().hex[:8]}"


pytestmark = pytest.mark.usefixtures("fresh_ledgers")


def test_seed_request_fails_and_compensates_in_reverse_order(lab: Lab) -> None:
    since = logbook.mark()
    with pytest.raises(IngressError) as failed:
        lab.ingress.call("BookingWorkflow", "Run", SEED_BOOKING, key=trip())
    assert failed.value.message == "This payment should never be accepted! Aborting booking."

    assert saga_history() == one_saga(declined=True)  # each undo once, nothing confirmed
    flight = travel.flights.ledger.entries("reserve")
    car = travel.car_rentals.ledger.entries("reserve")
    assert travel.flights.ledger.entries("cancel")[0]["reservation_id"] == flight[0][
        "reservation_id"]

    # The undo runs as a stack: refund, then the car, then the flight.
    undo = [e for e in sorted(travel.payments.ledger.entries() + travel.car_rentals.ledger.entries()
                              + travel.flights.ledger.entries(), key=lambda e: e["at"])
            if e["action"] in ("refund", "cancel")]
    assert [e["system"] for e in undo] == ["payments", "car-rentals", "flights"]

    lines = logbook.lines(since)
    expected = [f"Flight reserved: {flight[0]['reservation_id']}",
                f"Car reserved: {car[0]['reservation_id']}",
                "ERROR This payment should never be accepted! Aborting booking.",
                "Refunded payment: ", f"Car cancelled: {car[0]['reservation_id']}",
                f"Flight cancelled: {flight[0]['reservation_id']}"]
    assert len(lines) == len(expected)
    assert all(want in line for want, line in zip(expected, lines, strict=True)), lines


def test_sequence_diagram_is_drawn_from_the_recorded_journal(lab: Lab) -> None:
    trip_id = trip()
    invocation = lab.ingress.send("BookingWorkflow", "Run", SEED_BOOKING, key=trip_id)
    with pytest.raises(IngressError):
        lab.ingress.attach(invocation)
    diagram = views.sequence(lab.admin, invocation)
    # One list, in the order of the journal: the refund comes before the car's cancellation,
    # which comes before the flight's.
    calls = [(s, t, re.split(r" [✓✗]", label)[0]) for s, t, label in diagram.steps
             if label.startswith(("Reserve", "Cancel", "run"))]
    assert calls == [("BookingWorkflow", "Flights", "Reserve"),
                     ("BookingWorkflow", "CarRentals", "Reserve"),
                     ("BookingWorkflow", "BookingWorkflow", "run payment key"),
                     ("BookingWorkflow", "BookingWorkflow", "run charge"),
                     ("BookingWorkflow", "BookingWorkflow", "run refund"),
                     ("BookingWorkflow", "CarRentals", "Cancel"),
                     ("BookingWorkflow", "Flights", "Cancel")]
    assert "run charge ✗ [402]" in str(diagram) and "run refund ✓" in str(diagram)
    assert diagram.mermaid().startswith("sequenceDiagram")
    assert "```mermaid" in diagram._repr_markdown_()


def test_successful_booking_confirms_and_charges_once(lab: Lab) -> None:
    invocation = lab.ingress.send("BookingWorkflow", "Run", booking(GOOD_CARD, 99.5), key=trip())
    result = lab.ingress.attach(invocation)
    assert result["card"] == "************4444" and result["amount"] == 99.5
    assert saga_history() == one_saga(declined=False)
    # The confirmations run in parallel: both calls are journaled before either result.
    entries = [(row["entry_type"], row["detail"]) for row in views.journal(lab.admin, invocation)]
    calls = [i for i, (kind, _) in enumerate(entries) if kind == "Command: Call"]
    results = [i for i, (kind, _) in enumerate(entries) if kind == "Notification: Call"]
    assert len(calls) == len(results) == 4
    assert calls[3] < results[2], entries
    assert travel.flights.ledger.count("confirm", reservation_id=result["flight_reservation"]) == 1
    assert travel.car_rentals.ledger.count("confirm",
                                           reservation_id=result["car_reservation"]) == 1
    charges = travel.payments.ledger.entries("charge")
    assert [(c["payment_id"], c["card"]) for c in charges] == [
        (result["payment"], "************4444")]
    assert travel.payments.ledger.count("refund") == 0
    assert travel.flights.ledger.count("cancel") == travel.car_rentals.ledger.count("cancel") == 0


def test_transient_failures_are_retried_without_a_second_reservation(lab: Lab) -> None:
    travel.car_rentals.failures.fail_next("reserve", 2)
    travel.payments.failures.fail_next("charge", 1)
    trip_id = trip()
    result = lab.ingress.call("BookingWorkflow", "Run", booking(GOOD_CARD), key=trip_id)
    assert travel.flights.ledger.count("reserve") == 1
    assert travel.car_rentals.ledger.count("reserve") == 1
    assert travel.payments.ledger.entries("charge")[0]["payment_id"] == result["payment"]
    assert travel.payments.ledger.count("charge") == 1
    assert travel.car_rentals.failures.fired("reserve") == 2  # the retries did happen
    assert travel.payments.failures.fired("charge") == 1


@pytest.mark.lab_restate
def test_restate_server_crash_mid_saga_loses_and_repeats_nothing(lab: Lab) -> None:
    travel.car_rentals.failures.fail_next("reserve", 3)  # keeps the saga in flight a moment
    invocation = lab.ingress.send("BookingWorkflow", "Run", booking(GOOD_CARD), key=trip())
    lab.admin.wait_for_entry(invocation, "Command: Call", count=2)  # CarRentals/Reserve called
    at_crash = saga_history()
    lab.server.restart()
    result = lab.ingress.attach(invocation)
    assert travel.car_rentals.failures.fired("reserve") == 3
    assert_nothing_repeated_since(at_crash, declined=False)
    assert travel.flights.ledger.count("confirm", reservation_id=result["flight_reservation"]) == 1


def test_cancelling_a_running_saga_runs_the_compensations(lab: Lab) -> None:
    travel.car_rentals.failures.fail_next("reserve", 10_000)  # the car API is down
    invocation = lab.ingress.send("BookingWorkflow", "Run", booking(GOOD_CARD), key=trip())
    lab.admin.wait_for_entry(invocation, "Command: Call", count=2)
    lab.admin.cancel(invocation)
    with pytest.raises(IngressError) as cancelled:
        lab.ingress.attach(invocation)
    assert cancelled.value.status == 409
    flight_id = travel.flights.ledger.entries("reserve")[0]["reservation_id"]
    # The flight cancelled once (a second cancel would show as "already cancelled"); the car
    # never reserved; nothing charged (the payment key was never made: no refund either).
    assert saga_history() == {"flights": ["reserve", "cancel [cancelled]"], "car-rentals": [],
                              "payments": []}
    assert travel.flights.status(flight_id) == "cancelled"


@pytest.mark.parametrize("body, complaint", [
    (b"{not json", "not valid JSON"),
    ({**SEED_BOOKING, "flights": {"flight_id": "1"}}, "passenger_name"),
    ({"flights": {"flight_id": "1"}}, "'car'"),
    ({**SEED_BOOKING, "payment_info": {"card_number": "12", "amount": 5}}, "12-19 digits"),
    ({**SEED_BOOKING, "payment_info": {"card_number": GOOD_CARD, "amount": -5}}, "positive"),
    ({**SEED_BOOKING, "payment_info": {"card_number": GOOD_CARD, "amount": True}}, "amount"),
    ([1, 2], "expected an object"),
])
def test_malformed_booking_is_a_400_and_reserves_nothing(lab: Lab, body: Any,
                                                         complaint: str) -> None:
    with pytest.raises(IngressError) as rejected:
        lab.ingress.call("BookingWorkflow", "Run", body, key=trip())
    assert rejected.value.status == 400
    assert complaint in rejected.value.message
    assert travel.flights.ledger.count() == travel.car_rentals.ledger.count() == 0
    assert travel.payments.ledger.count() == 0


@pytest.mark.parametrize("body, status, complaint", [
    ({**SEED_BOOKING, "flights": {"flight_id": "1", "passenger_name": "J" * 2_001}}, 400,
     "'passenger_name': 2,001 characters, more than the limit of 2,000"),
    ([SEED_BOOKING] * 1_000, 413, "more than the limit of 65,536"),  # 1,000× the seed's body
])
def test_oversized_booking_is_refused_naming_the_limit(lab: Lab, body: Any, status: int,
                                                       complaint: str) -> None:
    since = logbook.mark()
    with pytest.raises(IngressError) as rejected:
        lab.ingress.call("BookingWorkflow", "Run", body, key=trip())
    assert rejected.value.status == status and complaint in rejected.value.message
    assert travel.flights.ledger.count() == travel.payments.ledger.count() == 0
    assert all(len(line) < 300 for line in logbook.lines(since))


def test_card_numbers_are_only_ever_masked(lab: Lab) -> None:
    since = logbook.mark()
    invocation = lab.ingress.send("BookingWorkflow", "Run", booking(GOOD_CARD), key=trip())
    lab.ingress.attach(invocation)
    shown = "\n".join([*logbook.lines(since), str(travel.payments.ledger.entries()),
                       str(views.journal(lab.admin, invocation)),
                       views.journal(lab.admin, invocation)._repr_html_(),
                       str(views.sequence(lab.admin, invocation))])
    assert GOOD_CARD not in shown
    assert "4444" in shown


def test_compensations_are_idempotent() -> None:
    flight = travel.flights.reserve({"flight_id": "1", "passenger_name": "A"}, "request-1")
    assert travel.flights.reserve({"flight_id": "1", "passenger_name": "A"}, "request-1") == flight
    assert travel.flights.ledger.count("reserve") == 1
    assert travel.flights.ledger.count("reserve (repeated)") == 1
    assert travel.flights.cancel(flight) is True
    assert travel.flights.cancel(flight) is False
    assert [e["effect"] for e in travel.flights.ledger.entries("cancel")] == [
        "cancelled", "already cancelled"]
    key = str(uuid.uuid4())
    assert travel.payments.refund(key) == "nothing was charged"
    travel.payments.charge(key, GOOD_CARD, 10)
    travel.payments.charge(key, GOOD_CARD, 10)
    assert travel.payments.ledger.count("charge") == 1
    assert travel.payments.ledger.count("charge (repeated)") == 1
    assert travel.payments.refund(key) == "refunded"
    assert travel.payments.refund(key) == "already refunded"


def test_confirm_is_idempotent_and_refuses_a_cancelled_reservation() -> None:
    flight = travel.flights.reserve({"flight_id": "1", "passenger_name": "A"}, "request-2")
    travel.flights.confirm(flight)
    travel.flights.confirm(flight)  # a re-run after a crash: no error, no second effect
    assert travel.flights.ledger.count("confirm") == 1
    assert travel.flights.ledger.count("confirm (repeated)") == 1
    car = travel.car_rentals.reserve({"pickup_location": "X", "rental_date": "D"}, "request-3")
    travel.car_rentals.cancel(car)
    with pytest.raises(travel.ReservationClosed, match="is cancelled, so it cannot be confirmed"):
        travel.car_rentals.confirm(car)
    assert travel.car_rentals.ledger.count("confirm") == 0


def test_confirming_a_cancelled_reservation_is_a_terminal_409(lab: Lab) -> None:
    car = travel.car_rentals.reserve({"pickup_location": "X", "rental_date": "D"}, "request-4")
    travel.car_rentals.cancel(car)
    with pytest.raises(IngressError) as refused:
        call_as_a_handler(lab, "CarRentals", "Confirm", car)  # a JSON string, from a handler
    assert refused.value.status == 409  # not retried: no retry would help
    assert "cannot be confirmed" in refused.value.message


def test_rebooking_a_purged_trip_id_gets_a_payment_key_of_its_own(lab: Lab) -> None:
    """A trip id is free again once its run is purged. The new run must not inherit the old
    run's payment key (ctx.uuid() would: it derives from the workflow id), or the payment API
    takes the new charge for a repeat of the old one, and a later declined run of the same id
    refunds an earlier trip."""
    key = trip()
    runs = []
    for _ in range(2):
        runs.append(lab.ingress.call("BookingWorkflow", "Run", booking(GOOD_CARD), key=key))
        lab.cli("invocations", "purge", f"BookingWorkflow/{key}")
    with pytest.raises(IngressError) as declined:
        lab.ingress.call("BookingWorkflow", "Run", booking(travel.DECLINED_TEST_CARD), key=key)
    assert declined.value.status == 402

    first, second = (run["payment"] for run in runs)
    assert first != second
    assert travel.payments.ledger.count("charge") == 2
    assert travel.payments.ledger.count("charge (repeated)") == 0
    refunds = travel.payments.ledger.entries("refund")
    assert [r["effect"] for r in refunds] == ["nothing was charged"]
    assert refunds[0]["payment_id"] not in (first, second)


def test_a_rejected_booking_uses_up_its_trip_id_until_purged(lab: Lab) -> None:
    """As the README says: a 400 is the workflow's one run for that id (409 afterwards);
    `restate invocations purge BookingWorkflow/<id>` frees the id."""
    key = trip()
    with pytest.raises(IngressError) as rejected:
        lab.ingress.call("BookingWorkflow", "Run", {"flights": {}}, key=key)
    assert rejected.value.status == 400
    with pytest.raises(IngressError) as again:
        lab.ingress.call("BookingWorkflow", "Run", booking(GOOD_CARD), key=key)
    assert again.value.status == 409, again.value
    assert travel.payments.ledger.count() == 0
    lab.cli("invocations", "purge", f"BookingWorkflow/{key}")
    result = lab.ingress.call("BookingWorkflow", "Run", booking(GOOD_CARD), key=key)
    assert result["card"].endswith("4444")
