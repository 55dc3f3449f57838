"""Checks for the exercises of notebook 11 (your own database)."""

from __future__ import annotations

import uuid
from typing import Any

from ... import database
from ...lab import IngressError, Lab
from ...patterns import accounts
from .checking import HOST, SERVER, NotYet, answer, check, crash, eventually, expect, settle

#: While a check waits for a COMMIT, each message your handler sends Restate is held this long:
#: the crash lands after the COMMIT and before Restate has the step's result.
HOLD_SECONDS = 1.0
#: The table the refunds' tokens go in (the check makes it, beside Accounts' tables).
REFUNDS_TABLE = "CREATE TABLE IF NOT EXISTS refunds (refund_id text PRIMARY KEY)"


def open_account(prefix: str, balance_cents: int = 0) -> str:
    """A new account of ``balance_cents``, written straight to Accounts' table (the refunds
    table made too, if missing)."""
    account = f"{prefix}-{uuid.uuid4().hex[:8]}"
    with accounts.connect() as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(11)")  # one creator at a time
        conn.execute(REFUNDS_TABLE)
        conn.execute("INSERT INTO accounts (id, balance_cents) VALUES (%s, %s)",
                     (account, balance_cents))
    return account


#: The account's balance, read from the table (not through Restate).
balance = accounts.read_balance


def crash_after_commit(lab: Lab, service: str, handler: str, body: Any, account: str,
                       part: str, unchanged_hint: str) -> Any:
    """Send ``body``; once the account's balance has moved (the COMMIT), crash ``part`` before
    Restate has the step's result; then let the invocation end, and return its answer."""
    before = balance(account)
    with lab.paced(HOLD_SECONDS):
        invocation = lab.ingress.send(service, handler, body)
        if not eventually(lambda: balance(account) != before, 10):
            try:
                said = f"it answered {settle(lab, invocation, f'{service}/{handler}', within=5)!r}"
            except IngressError as refused:
                said = f"it answered {refused.status} ({refused.message})"
            raise NotYet(f"{service}/{handler} to change the balance of {account}",
                         f"{said} without changing it", unchanged_hint)
        crash(lab, part, "after the COMMIT, before the step's result reached Restate")
    try:
        return settle(lab, invocation, f"{service}/{handler}")
    except IngressError as refused:
        raise NotYet(f"{service}/{handler} to answer as it did before the crash",
                     f"the retry after the crash answered {refused.status} ({refused.message}),"
                     " though the COMMIT before it had moved the money",
                     "look for the token first, before anything that could refuse: a retry "
                     "that finds it was applied before, and says so") from None


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


# --- 11.2 ----------------------------------------------------------------------------------

#: The limit Exercise 11.2 states: at most this much out of one account per day.
DAILY_LIMIT_CENTS = 1_000


def _waiting_on_a_lock(count: int) -> bool:
    with database.connect() as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type ="
                            " 'Lock' AND backend_type = 'client backend'"
                            ).fetchone()[0] >= count


def _outcome(lab: Lab, invocation: str) -> int:
    """200, or the status it was refused with."""
    try:
        settle(lab, invocation, "LimitedAccounts/Transfer")
    except IngressError as refused:
        return refused.status
    return 200


@check("Exercise 11.2 · a daily limit, two transfers at once")
def check_daily_limit(lab: Lab) -> None:
    source = open_account("limited", 10_000)
    targets = [open_account("payee") for _ in range(2)]

    def transfer(to: str, cents: int) -> dict[str, Any]:
        return {"transfer_id": f"d-{uuid.uuid4().hex[:8]}", "from": source, "to": to,
                "amount_cents": cents}

    # Two transfers of 600 at once: the check holds the account's row, so both are under way
    # before either can finish — as two requests in the same millisecond would be.
    with database.connect() as held, held.transaction():
        held.execute("SELECT 1 FROM accounts WHERE id = %s FOR UPDATE", (source,))
        both = [lab.ingress.send("LimitedAccounts", "Transfer", transfer(to, 600))
                for to in targets]
        eventually(lambda: _waiting_on_a_lock(2), 5)
    outcomes = sorted(_outcome(lab, invocation) for invocation in both)
    out = 10_000 - balance(source)
    expect(outcomes == [200, 409] and out == 600,
           "of two transfers of 600 at once, one applied and one refused with 409 (limit 1,000)",
           f"they answered {outcomes} and {out} cents left the account",
           "check the limit inside the transfer's transaction, after locking the account's row"
           " (SELECT … FOR UPDATE): a read in a step before, or before the lock, sees neither "
           "transfer, and both slip under the limit")
    crash_after_commit(lab, "LimitedAccounts", "Transfer", transfer(targets[0], 400), source,
                       HOST, "a transfer that brings the day to exactly 1,000 is within the "
                       "limit: refuse only over it (>), not at it")
    expect(10_000 - balance(source) == 1_000, "a transfer of 400 to bring the day to exactly "
           "1,000, applied once through a crash after its COMMIT",
           f"{10_000 - balance(source)} cents left the account", "keep the transfers' token")
    refused = _outcome(lab, lab.ingress.send("LimitedAccounts", "Transfer",
                                             transfer(targets[1], 1)))
    expect(refused == 409 and balance(source) == 9_000, "a transfer of 1 cent more to be "
           "refused with 409", f"it answered {refused}; {10_000 - balance(source)} cents left "
           "the account", "raise TerminalError(…, 409) when today's transfers pass the limit")
