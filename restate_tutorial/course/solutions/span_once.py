"""Exercise 12.1: a span once, whatever the replays — restate.ext.tracing's tracer, around the
step, in the handler."""

from __future__ import annotations

import restate
from restate import Context, RunOptions

from restate_tutorial.simulated import mailer
from restate_tutorial.tracing import tracer

shipping = restate.Service("Shipping")


def notify_warehouse(order_id: str) -> None:
    mailer.notify("warehouse@example.com", f"Ship order {order_id}", "Pack it today.",
                  message_id=f"ship-{order_id}")


def print_label(order_id: str) -> str:
    return f"LABEL-{order_id}"


@shipping.handler(name="Ship")
async def ship(ctx: Context, request: dict) -> str:
    # No span while the handler replays its journal: one span, however often it runs.
    with tracer.start_as_current_span("notify warehouse",
                                      attributes={"order.id": request["order_id"]}):
        await ctx.run_typed("notify warehouse", notify_warehouse, RunOptions(),
                            request["order_id"])
    return await ctx.run_typed("print label", print_label, RunOptions(), request["order_id"])
