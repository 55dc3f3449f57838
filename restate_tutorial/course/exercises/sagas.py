"""Checks for the exercises of notebook 01 (sagas)."""

from __future__ import annotations

import uuid

from ...lab import IngressError, Lab, wait_until
from ...scenarios import GOOD_CARD, booking
from ...simulated import travel
from .checking import SERVER, answer, check, crash, expect, settle

#: The seed's booking, with a hotel.
HOTEL_BOOKING = booking(GOOD_CARD, hotel={"hotel_id": "H-42", "nights": 3})


@check("Exercise 1.1 · award loyalty points once")
def check_loyalty_points(lab: Lab) -> None:
    member = f"member-{uuid.uuid4().hex[:6]}"
    travel.loyalty.failures.lose_answer_next("add_points")  # it takes effect, the answer is lost
    answer(lab, "LoyaltyBonus", "Award", {"member": member, "points": 100})
    calls = travel.loyalty.ledger.history(member=member)
    expect(len(calls) == 2, "the step to run twice (its first answer was lost)",
           f"the loyalty API saw {len(calls)} call(s): {calls}",
           "keep add_points inside ctx.run_typed, so that Restate retries it")
    balance = travel.loyalty.balance(member)
    expect(balance == 100, "a balance of 100 points after two calls of the same step",
           f"a balance of {balance} points (the API's ledger: {calls})",
           "the API recognises a repeat by its request_id: pass one that stays the same when "
           "the step runs again — made in a journaled step of its own, as in section 10 (a key "
           "made inside the add-points step would be new on every retry)")
    # A second award of the same points to the same member: another request, not a repeat.
    crash(lab, SERVER, "between two awards")
    answer(lab, "LoyaltyBonus", "Award", {"member": member, "points": 100})
    balance = travel.loyalty.balance(member)
    expect(balance == 200, "two separate awards of 100 points to add up to 200",
           f"a balance of {balance} points after the second award (the API's ledger: "
           f"{travel.loyalty.ledger.history(member=member)})",
           "a request id derived from the request (member, points) is the same for two "
           "different awards, so the API takes the second one for a repeat: make a random one, "
           "once per run, in a journaled step of its own (unique_key)")


@check("Exercise 1.2 · a hotel in the saga")
def check_hotel_saga(lab: Lab) -> None:
    hotel_before = len(travel.hotels.ledger.entries())
    trip = f"trip-{uuid.uuid4().hex[:8]}"
    result = answer(lab, "TripWithHotel", "Run", HOTEL_BOOKING, key=trip)
    hotel = travel.hotels.ledger.entries()[hotel_before:]
    actions = [e["action"] for e in hotel]
    expect(actions == ["reserve", "confirm"],
           "an accepted card: the hotel reserved, then confirmed, once each",
           f"the hotel API saw {actions or 'nothing'}",
           "reserve through ctx.service_call(hotel_service.reserve, hotel) and confirm like "
           "the flight and the car")
    expect(isinstance(result, dict) and result.get("hotel_reservation") == hotel[0][
        "reservation_id"], "the result to carry the hotel's reservation id as "
        "'hotel_reservation'", f"the result was {result}", "add \"hotel_reservation\": hotel_id "
        "to the dict the workflow returns")

    declined = booking(hotel=HOTEL_BOOKING["hotel"])
    marks = {api.ledger.system: len(api.ledger.entries())
             for api in (travel.flights, travel.car_rentals, travel.hotels, travel.payments)}
    try:
        answer(lab, "TripWithHotel", "Run", declined, key=f"{trip}-declined")
        failed = None
    except IngressError as error:
        failed = error
    expect(failed is not None and failed.status == 402,
           "the declined card to fail the booking with HTTP 402",
           f"it answered {failed or 'with success'}",
           "let the TerminalError from the charge propagate after the compensations ran")
    new = sorted((e for api in (travel.flights, travel.car_rentals, travel.hotels,
                                travel.payments)
                  for e in api.ledger.entries()[marks[api.ledger.system]:]),
                 key=lambda e: e["at"])
    undo = [e["system"] for e in new if e["action"] in ("cancel", "refund")]
    expect(undo == ["payments", "hotels", "car-rentals", "flights"],
           "the undo in reverse order: refund, cancel hotel, cancel car, cancel flight",
           f"the undo went {' → '.join(undo) or 'nowhere'}",
           "reserve the hotel after the car and before the payment, and push its "
           "cancellation right after the reservation returns its id")
    cancels = [e.get("effect") for e in new if e["system"] == "hotels" and e["action"] == "cancel"]
    expect(cancels == ["cancelled"], "the hotel cancelled exactly once",
           f"hotel cancellations: {cancels}", "push the hotel's compensation once")

    _cancel_while_the_hotel_is_reserved(lab, trip)


def _cancel_while_the_hotel_is_reserved(lab: Lab, trip: str) -> None:
    """Cancel the saga while the hotel's reservation is still being retried: only what was
    reserved is undone (a compensation pushed before its reservation has no id to cancel)."""
    marks = {api.ledger.system: len(api.ledger.entries())
             for api in (travel.flights, travel.car_rentals, travel.hotels)}
    travel.hotels.failures.fail_next("reserve", 10_000)  # the hotel API is down
    try:
        invocation = lab.ingress.send("TripWithHotel", "Run", HOTEL_BOOKING,
                                      key=f"{trip}-cancelled")
        wait_until(lambda: travel.hotels.failures.fired("reserve") > 0, 30,
                   "the hotel's reservation to be tried")
        crash(lab, SERVER, "while the hotel's reservation is retried")
        lab.admin.cancel(invocation)
        try:
            settle(lab, invocation, "the cancelled TripWithHotel/Run")
            ended = None
        except IngressError as error:
            ended = error
    finally:
        travel.hotels.failures.clear()
    expect(ended is not None and ended.status == 409,
           "the cancelled booking to end with HTTP 409 (cancelled)",
           f"it ended with {ended or 'success'}",
           "let the TerminalError of the cancellation propagate after the compensations ran")
    undone = {system: [e["action"] for e in api.ledger.entries()[marks[system]:]
                       if e["action"] == "cancel"]
              for system, api in (("flights", travel.flights), ("car-rentals", travel.car_rentals),
                                  ("hotels", travel.hotels))}
    expect(undone == {"flights": ["cancel"], "car-rentals": ["cancel"], "hotels": []},
           "a saga cancelled while the hotel is being reserved: the flight and the car cancelled, "
           "nothing to cancel at the hotel", f"cancellations: {undone}",
           "push the hotel's compensation right after its reservation returned its id, not before")
