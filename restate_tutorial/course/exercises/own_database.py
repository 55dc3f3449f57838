"""Checks for the exercises of notebook 11 (your own database)."""

from __future__ import annotations

import uuid
from typing import Any

from ... import database
from ...lab import Lab
from ...patterns import accounts
from .checking import HOST, SERVER, NotYet, answer, check, crash, eventually, expect, settle

#: While a check waits for a COMMIT, each message your handler sends Restate is held this long:
#: the crash lands after the COMMIT and before Restate has the step's result.
HOLD_SECONDS = 1.0
#: The table the refunds' tokens go in (the check makes it, beside Accounts' tables).
REFUNDS_TABLE = "CREATE TABLE IF NOT EXISTS refunds (refund_id text PRIMARY KEY)"


def open_account(prefix: str) -> str:
    """A new account of 0 cents, written straight to the table (Accounts' tables made if
    missing, and the refunds table)."""
    account = f"{prefix}-{uuid.uuid4().hex[:8]}"
    with database.connect() as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(11)")  # one creator at a time
        conn.execute(accounts.SCHEMA + ";" + REFUNDS_TABLE)
        conn.execute("INSERT INTO accounts (id, balance_cents) VALUES (%s, 0)", (account,))
    return account


def balance(account: str) -> int:
    """The account's balance, read from the table (not through Restate)."""
    with database.connect() as conn:
        row = conn.execute("SELECT balance_cents FROM accounts WHERE id = %s",
                           (account,)).fetchone()
    return int(row[0]) if row else 0


def crash_after_commit(lab: Lab, service: str, handler: str, body: Any, account: str,
                       part: str, unchanged_hint: str) -> Any:
    """Send ``body``; once the account's balance has moved (the COMMIT), crash ``part`` before
    Restate has the step's result; then let the invocation end, and return its answer."""
    before = balance(account)
    for host in lab.service_hosts:
        host.pace = HOLD_SECONDS
    try:
        invocation = lab.ingress.send(service, handler, body)
        if not eventually(lambda: balance(account) != before, 10):
            settle(lab, invocation, f"{service}/{handler}", within=5)
            raise NotYet(f"{service}/{handler} to change the balance of {account}",
                         "it ended without changing it", unchanged_hint)
        crash(lab, part, "after the COMMIT, before the step's result reached Restate")
    finally:
        for host in lab.service_hosts:
            host.pace = 0.0
    return settle(lab, invocation, f"{service}/{handler}")


@check("Exercise 11.1 · a refund, exactly once")
def check_refund(lab: Lab) -> None:
    account = open_account("refund")
    first = {"refund_id": f"r-{uuid.uuid4().hex[:8]}", "account": account, "amount_cents": 500}
    crash_after_commit(lab, "Refunds", "Refund", first, account, HOST,
                       "update accounts.balance_cents of the request's account in the step")
    expect(balance(account) == 500, "500 cents refunded once, through a crash after the COMMIT",
           f"the account holds {balance(account)} cents: the retry after the crash refunded "
           "again", "in the same transaction as the credit, INSERT the refund_id into refunds "
           "(ON CONFLICT DO NOTHING RETURNING 1); when no row comes back, it was refunded "
           "before: change nothing")
    answer(lab, "Refunds", "Refund", first)  # the client sends the same refund again
    expect(balance(account) == 500, "the same refund_id sent again to change nothing",
           f"the account holds {balance(account)} cents after the client sent it again",
           "the token must be the request's refund_id: a uuid made in the handler is new for "
           "every invocation, and a check in a step before the credit is journaled as it was")
    second = {**first, "refund_id": f"r-{uuid.uuid4().hex[:8]}"}  # same account and amount
    other = ("the token is the request's refund_id: account and amount are the same for two "
             "different refunds")
    crash_after_commit(lab, "Refunds", "Refund", second, account, SERVER,
                       f"a second refund (another refund_id) was taken for the first; {other}")
    expect(balance(account) == 1000, "a second refund (another refund_id, the same account and "
           "amount) to be refunded too, once", f"the account holds {balance(account)} cents",
           other)
