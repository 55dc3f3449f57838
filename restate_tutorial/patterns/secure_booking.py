"""A saga step that waits for another system: the bank's 3-D Secure check, answered later.

    SecureBooking/Run (trip id)        the original example's booking (+ "verify_seconds")
      ├─ Flights/Reserve, CarRentals/Reserve          push: cancel each, as in BookingWorkflow
      ├─ awakeable + run "ask the bank"               the bank will call back, over HTTP
      ├─ select: the awakeable ∥ sleep(verify_seconds)   both durable
      │    declined (the bank rejected it) → TerminalError 402 ┐ undo in reverse:
      │    no answer in time                → TerminalError 408 ┘ cancel car, cancel flight
      ├─ payment key, refund pushed, charge           as in BookingWorkflow
      └─ Flights/Confirm, CarRentals/Confirm

An awakeable is a promise with an id that anyone may complete through Restate's HTTP API
(``/restate/awakeables/<id>/resolve`` or ``/reject``): here the simulated bank does, from a
thread of its own, a moment after it was asked. The invocation waits durably in between.
Both ids are unguessable, and an approval counts only if it carries the request id the bank
was given (made in a journaled step): anything else declines the payment (402), never charges.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import restate
from restate import RunOptions, TerminalError, WorkflowContext

from ..simulated import bank
from ..simulated.travel import mask_card
from .keys import unique_key
from .payloads import JSON_INPUT, seconds
from .sagas import car_service, charge, flight_service, parse_booking, refund, undo

#: How long the bank may take by default, and at most.
VERIFY_SECONDS = 60.0
MAX_VERIFY_SECONDS = 3_600

secure_booking = restate.Workflow("SecureBooking")


@secure_booking.main(name="Run", input_serde=JSON_INPUT)
async def run(ctx: WorkflowContext, request: Any) -> dict[str, Any]:
    flight, car, payment = parse_booking(request)
    wait = seconds(request.get("verify_seconds", VERIFY_SECONDS), "booking", "verify_seconds",
                   MAX_VERIFY_SECONDS)
    compensations: list[Callable[[], Awaitable[Any]]] = []
    try:
        # Reserve the flight and the car; each cancellation is pushed once its id is known.
        flight_id = await ctx.service_call(flight_service.reserve, flight)
        compensations.append(lambda: ctx.service_call(flight_service.cancel, flight_id))
        car_id = await ctx.service_call(car_service.reserve, car)
        compensations.append(lambda: ctx.service_call(car_service.cancel, car_id))

        # Ask the bank (journaled: asked once), and give it an awakeable to answer on.
        callback_id, answered = ctx.awakeable(serde=JSON_INPUT)  # any body: never a retry
        request_id = await unique_key(ctx, "3-D Secure request id")
        await ctx.run_typed("ask the bank", bank.verify, RunOptions(), payment["card_number"],
                            payment["amount"], callback_id, request_id)
        # Wait for its answer or the deadline, whichever comes first.
        try:
            winner, answer = await restate.select(answer=answered,
                                                  timeout=ctx.sleep(timedelta(seconds=wait)))
        except TerminalError as rejected:
            if rejected.status_code == 409:  # the booking was cancelled while it waited
                raise
            raise TerminalError(f"3-D Secure declined: {rejected.message}", 402) from None
        if winner == "timeout":
            raise TerminalError(f"the bank did not answer within {wait:g} s", 408)
        if answer != {"request_id": request_id, "answer": "approved"}:  # not the bank's
            raise TerminalError("3-D Secure declined: the answer on the callback is not the "
                                "bank's (it lacks this request's id)", 402)

        # Verified: charge (its refund pushed first) and confirm, as in BookingWorkflow.
        payment_id = await unique_key(ctx, "payment key")
        compensations.append(lambda: ctx.run_typed("refund", refund, RunOptions(), payment_id))
        await ctx.run_typed("charge", charge, RunOptions(), payment_id, payment["card_number"],
                            payment["amount"])
        await ctx.service_call(flight_service.confirm, flight_id)
        await ctx.service_call(car_service.confirm, car_id)
    except TerminalError:
        for compensation in reversed(compensations):
            await undo(compensation)
        raise
    return {"flight_reservation": flight_id, "car_reservation": car_id, "payment": payment_id,
            "card": mask_card(payment["card_number"]), "amount": payment["amount"]}
