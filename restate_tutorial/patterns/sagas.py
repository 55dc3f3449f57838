"""Sagas: book a trip, and undo the finished steps when a later one fails for good.

    BookingWorkflow/Run (trip id)
      ├─ Flights/Reserve      → reservation id      push: Flights/Cancel(id)
      ├─ CarRentals/Reserve   → reservation id      push: CarRentals/Cancel(id)
      ├─ payment key = run "payment key" (a random uuid4, journaled)   push: refund(key)
      │                                                    ← the refund is pushed *before* charging
      ├─ charge(key)           one shot; an error may hide a charge that went through
      ├─ Flights/Confirm ∥ CarRentals/Confirm   (in parallel)
      └─ on TerminalError: run the pushed compensations last-in first-out, then fail

Two-phase APIs hand out an id that is needed to cancel, so their compensation is pushed once
the id is known: a reservation that failed was never confirmed and needs no undo. The payment
is one call whose outcome is uncertain on error, so its refund is pushed first; the payment
API uses the idempotency key to tell whether there is anything to refund. Every compensation
is idempotent, every step is journaled, and every side effect carries a key from the journal
(a step can run again if a crash falls between doing it and journaling it), so retries,
crashes and failovers never repeat an effect.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import restate
from restate import Context, RunOptions, TerminalError, WorkflowContext

from ..simulated import travel
from ..simulated.travel import PaymentDeclined, ReservationAPI, ReservationClosed, mask_card
from .keys import unique_key
from .payloads import JSON_INPUT, fields, text

log = restate.getLogger("restate_tutorial.patterns.sagas")

# -- Flights and CarRentals: Restate services in front of the two-phase booking APIs --------

@dataclass(frozen=True)
class TwoPhaseService:
    """A Restate service in front of a two-phase booking API: Reserve → Confirm | Cancel."""

    service: restate.Service
    reserve: Callable[..., Awaitable[str]]
    confirm: Callable[..., Awaitable[None]]
    cancel: Callable[..., Awaitable[None]]


def two_phase_service(name: str, noun: str, api: ReservationAPI,
                      **request_fields: type) -> TwoPhaseService:
    """``name``/Reserve, Confirm and Cancel, logging "<noun> reserved: <id>" and so on. Only
    sagas call them: the ingress refuses them (anyone could cancel a reservation there)."""
    service = restate.Service(name, ingress_private=True)

    @service.handler(name="Reserve", input_serde=JSON_INPUT)
    async def reserve(ctx: Context, request: Any) -> str:
        details = fields(request, noun.lower(), **request_fields)
        # A request id of this call's own, from the journal: even a re-run of the step below
        # (its answer lost) reserves only once.
        request_id = await unique_key(ctx, "request id")
        # Journaled: a retry after this point reuses the reservation id instead of reserving again.
        reservation_id = await ctx.run_typed("reserve", api.reserve, RunOptions(), details,
                                             request_id)
        log.info(f"{noun} reserved: {reservation_id}")
        return reservation_id

    @service.handler(name="Confirm", input_serde=JSON_INPUT)
    async def confirm(ctx: Context, reservation_id: Any) -> None:
        reservation_id = text(reservation_id, "reservation id")
        await ctx.run_typed("confirm", confirm_reservation, RunOptions(), api, reservation_id)
        log.info(f"{noun} confirmed: {reservation_id}")

    @service.handler(name="Cancel", input_serde=JSON_INPUT)
    async def cancel(ctx: Context, reservation_id: Any) -> None:
        reservation_id = text(reservation_id, "reservation id")
        await ctx.run_typed("cancel", api.cancel, RunOptions(), reservation_id)  # idempotent
        log.info(f"{noun} cancelled: {reservation_id}")

    return TwoPhaseService(service, reserve, confirm, cancel)


def confirm_reservation(api: ReservationAPI, reservation_id: str) -> None:
    try:
        api.confirm(reservation_id)  # idempotent: a re-run after a crash changes nothing
    except ReservationClosed as closed:
        raise TerminalError(str(closed), 409) from None  # a retry would not help


flight_service = two_phase_service("Flights", "Flight", travel.flights, flight_id=str,
                                   passenger_name=str)
car_service = two_phase_service("CarRentals", "Car", travel.car_rentals, pickup_location=str,
                                rental_date=str)
# Hotels: a third two-phase service, for the exercises at the end of notebook 01.
hotel_service = two_phase_service("Hotels", "Hotel", travel.hotels, hotel_id=str, nights=int)
flights, car_rentals, hotels = flight_service.service, car_service.service, hotel_service.service


# -- Payment: one-shot calls to the payment API, as journaled steps of the workflow ---------

def charge(payment_id: str, card_number: str, amount: float) -> str:
    try:
        payment = travel.payments.charge(payment_id, card_number, amount)
    except PaymentDeclined as declined:
        raise TerminalError(str(declined), 402) from None  # a retry would not help
    log.info(f"Charged payment: {payment} (card {mask_card(card_number)}, amount {amount:g})")
    return payment


def refund(payment_id: str) -> None:
    effect = travel.payments.refund(payment_id)
    suffix = "" if effect == "refunded" else f" ({effect})"
    log.info(f"Refunded payment: {payment_id}{suffix}")


# -- The saga ----------------------------------------------------------------------------

booking_workflow = restate.Workflow("BookingWorkflow")


@booking_workflow.main(name="Run", input_serde=JSON_INPUT)
async def run(ctx: WorkflowContext, request: Any) -> dict[str, Any]:
    flight, car, payment = parse_booking(request)
    compensations: list[Callable[[], Awaitable[None]]] = []
    try:
        # Reserve the flight; its cancellation needs the id, so it is pushed afterwards.
        flight_id = await ctx.service_call(flight_service.reserve, flight)
        compensations.append(lambda: ctx.service_call(flight_service.cancel, flight_id))

        # Reserve the car, the same way.
        car_id = await ctx.service_call(car_service.reserve, car)
        compensations.append(lambda: ctx.service_call(car_service.cancel, car_id))

        # The payment key: made once per run and journaled, so retries reuse it and a new
        # booking of the same trip id gets a new one (not ctx.uuid(): see keys.py).
        payment_id = await unique_key(ctx, "payment key")
        # Push the refund *before* charging: an error may hide a charge that went through.
        compensations.append(lambda: ctx.run_typed("refund", refund, RunOptions(), payment_id))
        await ctx.run_typed("charge", charge, RunOptions(), payment_id, payment["card_number"],
                            payment["amount"])

        # Everything is in place: confirm both reservations, in parallel (they are independent).
        confirmations = [ctx.service_call(flight_service.confirm, flight_id),
                         ctx.service_call(car_service.confirm, car_id)]
        for confirmation in confirmations:
            await confirmation
    except TerminalError as error:
        log.error(str(error))
        # Undo in reverse order: the last thing done is the first undone.
        for compensation in reversed(compensations):
            await undo(compensation)
        raise
    return {"flight_reservation": flight_id, "car_reservation": car_id, "payment": payment_id,
            "card": mask_card(payment["card_number"]), "amount": payment["amount"]}


async def undo(compensation: Callable[[], Awaitable[Any]]) -> None:
    """Run one compensation to its end. A second cancellation of the workflow (another client,
    a retried request) interrupts the undo in progress with a TerminalError 409: start that
    compensation again (each one is idempotent) instead of leaving the rest undone."""
    while True:
        try:
            await compensation()
            return
        except TerminalError as again:
            if again.status_code != 409:
                raise


# -- Input checks: a malformed request fails at once with 400, before anything is booked ----

#: The largest amount a booking may charge.
MAX_AMOUNT = 1_000_000


def parse_booking(request: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    request = fields(request, "booking", flights=dict, car=dict, payment_info=dict)
    flight = fields(request.get("flights"), "booking flights", flight_id=str, passenger_name=str)
    car = fields(request.get("car"), "booking car", pickup_location=str, rental_date=str)
    payment = fields(request.get("payment_info"), "booking payment_info", card_number=str,
                     amount=(int, float))
    card_digits = payment["card_number"].replace(" ", "")
    # ASCII digits only: str.isdigit() alone accepts "４１１１…" (full-width) and other scripts.
    if not (card_digits.isascii() and card_digits.isdigit()) or not 12 <= len(card_digits) <= 19:
        raise TerminalError("malformed booking: payment_info.card_number must be 12-19 digits "
                            "0-9", 400)
    if not 0 < payment["amount"] <= MAX_AMOUNT:
        raise TerminalError("malformed booking: payment_info.amount must be positive and at "
                            f"most {MAX_AMOUNT:,}", 400)
    return flight, car, {"card_number": card_digits, "amount": payment["amount"]}
