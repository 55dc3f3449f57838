"""Exercise 1.2: the saga with a hotel — a third two-phase reservation, undone in its place."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import restate
from restate import RunOptions, TerminalError, WorkflowContext

from restate_tutorial.patterns.keys import unique_key
from restate_tutorial.patterns.payloads import fields
from restate_tutorial.patterns.sagas import (
    car_service,
    charge,
    flight_service,
    hotel_service,
    parse_booking,
    refund,
    undo,
)

trip_with_hotel = restate.Workflow("TripWithHotel")


@trip_with_hotel.main(name="Run")
async def run(ctx: WorkflowContext, request: dict) -> dict:
    flight, car, payment = parse_booking(request)
    hotel = fields(request.get("hotel"), "booking hotel", hotel_id=str, nights=int)
    compensations: list[Callable[[], Awaitable[None]]] = []
    try:
        flight_id = await ctx.service_call(flight_service.reserve, flight)
        compensations.append(lambda: ctx.service_call(flight_service.cancel, flight_id))
        car_id = await ctx.service_call(car_service.reserve, car)
        compensations.append(lambda: ctx.service_call(car_service.cancel, car_id))
        # The hotel, two-phase like the others: its cancellation is pushed once its id is known,
        # and before the payment's refund — so it is undone after the refund, before the car.
        hotel_id = await ctx.service_call(hotel_service.reserve, hotel)
        compensations.append(lambda: ctx.service_call(hotel_service.cancel, hotel_id))

        payment_id = await unique_key(ctx, "payment key")
        compensations.append(lambda: ctx.run_typed("refund", refund, RunOptions(), payment_id))
        await ctx.run_typed("charge", charge, RunOptions(), payment_id, payment["card_number"],
                            payment["amount"])

        for confirmation in [ctx.service_call(flight_service.confirm, flight_id),
                             ctx.service_call(car_service.confirm, car_id),
                             ctx.service_call(hotel_service.confirm, hotel_id)]:
            await confirmation
    except TerminalError:
        for compensation in reversed(compensations):
            await undo(compensation)  # runs it again if a second cancel interrupts it
        raise
    return {"flight_reservation": flight_id, "car_reservation": car_id,
            "hotel_reservation": hotel_id, "payment": payment_id}
