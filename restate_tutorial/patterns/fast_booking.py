"""The booking saga shaped for speed: one invocation instead of five.

    FastBookingWorkflow/Run (trip id)             same input, same simulated APIs, same result
      ├─ run "keys"                 flight and car request ids + the payment key, one step
      ├─ run "reserve flight" ∥ run "reserve car"     started together    push: cancel each
      ├─ run "charge"               (its refund pushed first, as in BookingWorkflow)
      ├─ run "confirm flight" ∥ run "confirm car"     started together
      └─ on TerminalError: the pushed compensations, last-in first-out, then fail

``BookingWorkflow`` (sagas.py) calls the Flights and CarRentals *services*: every reservation
is an invocation of its own, with its own journal, retries and deployment. Here the travel APIs
are journaled steps of the workflow itself, and independent steps run concurrently. What that
gives up: Flights and CarRentals are no longer services other workflows can call, retry
separately, scale or deploy on their own; their steps share the workflow's retry policy and its
deployment. What stays: every step is journaled and keyed, so a retry or a crash never repeats
an effect, and the compensations are the same. ``benchmarks/saga_peers.py`` measures both.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import restate
from restate import RunOptions, TerminalError, WorkflowContext

from ..simulated import travel
from ..simulated.travel import mask_card
from .payloads import JSON_INPUT
from .sagas import charge, confirm_reservation, parse_booking, refund, undo

fast_booking_workflow = restate.Workflow("FastBookingWorkflow")


def _keys() -> dict[str, str]:
    return {name: str(uuid.uuid4()) for name in ("flight", "car", "payment")}


@fast_booking_workflow.main(name="Run", input_serde=JSON_INPUT)
async def run(ctx: WorkflowContext, request: Any) -> dict[str, Any]:
    flight, car, payment = parse_booking(request)
    compensations: list[Callable[[], Awaitable[Any]]] = []
    try:
        # All three keys in one journaled step (random, so a new run of the id gets new ones).
        keys = await ctx.run_typed("keys", _keys, RunOptions())
        # Both reservations at once; each cancellation is pushed once its id is known.
        flight_step = ctx.run_typed("reserve flight", travel.flights.reserve, RunOptions(),
                                    flight, keys["flight"])
        car_step = ctx.run_typed("reserve car", travel.car_rentals.reserve, RunOptions(),
                                 car, keys["car"])
        await restate.gather(flight_step, car_step)
        flight_id, car_id = await flight_step, await car_step
        compensations.append(lambda: ctx.run_typed("cancel flight", travel.flights.cancel,
                                                   RunOptions(), flight_id))
        compensations.append(lambda: ctx.run_typed("cancel car", travel.car_rentals.cancel,
                                                   RunOptions(), car_id))
        # The refund is pushed before charging, as in BookingWorkflow.
        compensations.append(lambda: ctx.run_typed("refund", refund, RunOptions(),
                                                   keys["payment"]))
        await ctx.run_typed("charge", charge, RunOptions(), keys["payment"],
                            payment["card_number"], payment["amount"])
        # Both confirmations at once.
        await restate.gather(
            ctx.run_typed("confirm flight", confirm_reservation, RunOptions(), travel.flights,
                          flight_id),
            ctx.run_typed("confirm car", confirm_reservation, RunOptions(), travel.car_rentals,
                          car_id))
    except TerminalError:
        for compensation in reversed(compensations):
            await undo(compensation)
        raise
    return {"flight_reservation": flight_id, "car_reservation": car_id,
            "payment": keys["payment"], "card": mask_card(payment["card_number"]),
            "amount": payment["amount"]}
