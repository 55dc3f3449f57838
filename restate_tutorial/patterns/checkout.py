"""Seeing inside: a checkout whose steps leave spans in the trace restate-server starts.

    Checkout/Pay {"order_id", "card_number", "amount"}
      ├─ span "price order"    run "price"     the total with VAT (journaled)
      ├─ span "charge card"    run "charge"    the payment API; when it fails, Restate retries
      │                                        the invocation: a new attempt, a new attempt span
      └─ span "email receipt"  run "receipt"   one receipt per order

Restate traces every invocation: ``ingress`` ▸ ``invocation-start`` ▸ one ``invocation-attempt``
per attempt (an error when it failed) ▸ ``invocation-end``. The spans here are started with
restate.ext.tracing's tracer (``tracing.tracer``): each is a child of the attempt's span, and
none is made while the handler replays its journal — a step done by attempt 1 has its span
once, however many attempts follow. (A span made with a plain OpenTelemetry tracer is made again
on every replay.)
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import restate
from restate import Context, InvocationRetryPolicy, RunOptions, TerminalError

from ..simulated import mailer, travel
from ..tracing import tracer
from .payloads import JSON_INPUT, fields

# A payment that fails five times in a row is paused for an operator to look at (the default
# is to retry for ever): `restate invocations resume <id>` once the cause is fixed.
RETRIES = InvocationRetryPolicy(initial_interval=timedelta(milliseconds=100),
                                exponentiation_factor=2.0, max_attempts=5,
                                on_max_attempts="pause")
checkout = restate.Service("Checkout", invocation_retry_policy=RETRIES)
VAT = 0.21


@checkout.handler(name="Pay", input_serde=JSON_INPUT)
async def pay(ctx: Context, request: Any) -> dict[str, Any]:
    order = parse_order(request)
    about = {"order.id": order["order_id"]}
    with tracer.start_as_current_span("price order", attributes=about):
        total = await ctx.run_typed("price", price, RunOptions(), order["amount"])
    with tracer.start_as_current_span("charge card", attributes={**about, "amount": total}):
        payment = await ctx.run_typed("charge", charge, RunOptions(), order["order_id"],
                                      order["card_number"], total)
    with tracer.start_as_current_span("email receipt", attributes=about):
        await ctx.run_typed("receipt", receipt, RunOptions(), order["order_id"], total)
    return {"order_id": order["order_id"], "payment": payment, "total": total}


def parse_order(request: Any) -> dict[str, Any]:
    """The order in ``request``, else TerminalError(400) naming the field."""
    order = fields(request, "order", order_id=str, card_number=str, amount=(int, float))
    if not order["order_id"].strip() or len(order["order_id"]) > 200:
        raise TerminalError("malformed order: 'order_id' must be 1 to 200 characters", 400)
    if not order["order_id"].isprintable():  # it goes into the receipt's subject line
        raise TerminalError("malformed order: 'order_id' must not hold control characters "
                            "(CR, LF, …)", 400)
    digits = order["card_number"].replace(" ", "")
    if not (digits.isascii() and digits.isdigit() and 12 <= len(digits) <= 19):
        raise TerminalError("malformed order: card_number must be 12-19 digits 0-9", 400)
    if not (math.isfinite(order["amount"]) and 0 < order["amount"] <= 1_000_000):
        raise TerminalError("malformed order: amount must be positive and at most 1,000,000",
                            400)
    return {**order, "card_number": digits}


# --- the steps' effects (the payment API and the mailer are simulated) -------------------

def price(amount: float) -> float:
    return round(amount * (1 + VAT), 2)


def charge(order_id: str, card_number: str, total: float) -> str:
    """One payment per order (the order id is the idempotency key)."""
    try:
        return travel.payments.charge(f"order-{order_id}", card_number, total)
    except travel.PaymentDeclined as declined:
        raise TerminalError(str(declined), 402) from None


def receipt(order_id: str, total: float) -> None:
    mailer.notify("customer@example.com", f"Receipt for order {order_id}",
                  f"Paid: {total:.2f}", message_id=f"receipt-{order_id}")
