"""Exercise 11.2: a daily limit two transfers at once cannot both slip under — checked in the
transfer's own transaction, with the account's row locked first."""

from __future__ import annotations

import restate
from restate import Context, RunOptions, TerminalError

from restate_tutorial import database

DAILY_LIMIT_CENTS = 1_000
limited_accounts = database.uses(restate.Service("LimitedAccounts"))


def move(t: dict) -> None:
    with database.connect() as conn, conn.transaction():
        if conn.execute("INSERT INTO transfers (transfer_id, from_account, to_account,"
                        " amount_cents) VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING"
                        " RETURNING 1", (t["transfer_id"], t["from"], t["to"],
                                         t["amount_cents"])).fetchone() is None:
            return  # applied before
        # The account's row locked first: a second transfer from it waits here until this
        # one commits, and then counts it.
        conn.execute("SELECT 1 FROM accounts WHERE id = %s FOR UPDATE", (t["from"],))
        spent = conn.execute("SELECT sum(amount_cents)::bigint FROM transfers"
                             " WHERE from_account = %s AND applied_at >= current_date",
                             (t["from"],)).fetchone()[0]
        if spent > DAILY_LIMIT_CENTS:  # today's transfers, this one included
            raise TerminalError("over the daily limit: nothing was moved", 409)
        conn.execute("UPDATE accounts SET balance_cents = balance_cents - %s WHERE id = %s",
                     (t["amount_cents"], t["from"]))
        conn.execute("UPDATE accounts SET balance_cents = balance_cents + %s WHERE id = %s",
                     (t["amount_cents"], t["to"]))


@limited_accounts.handler(name="Transfer")
async def transfer(ctx: Context, request: dict) -> str:
    await ctx.run_typed("transfer", move, RunOptions(), request)
    return "applied"
