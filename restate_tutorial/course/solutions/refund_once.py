"""Exercise 11.1: a refund, exactly once — its token in the same transaction as the money."""

from __future__ import annotations

import restate
from restate import Context, RunOptions

from restate_tutorial import database

refunds = database.uses(restate.Service("Refunds"))


def credit(refund: dict) -> None:
    with database.connect() as conn, conn.transaction():
        first = conn.execute("INSERT INTO refunds (refund_id) VALUES (%s)"
                             " ON CONFLICT (refund_id) DO NOTHING RETURNING 1",
                             (refund["refund_id"],)).fetchone()
        if first is None:  # refunded before: a retry after a crash, or the client again
            return
        conn.execute("UPDATE accounts SET balance_cents = balance_cents + %s WHERE id = %s",
                     (refund["amount_cents"], refund["account"]))


@refunds.handler(name="Refund")
async def refund(ctx: Context, request: dict) -> str:
    await ctx.run_typed("credit", credit, RunOptions(), request)
    return "refunded"
