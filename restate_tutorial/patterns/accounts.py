"""Your own database, exactly once: money moved between accounts in a real PostgreSQL.

    Accounts/Transfer {"transfer_id", "from", "to", "amount_cents"}
      └─ run "transfer" — ONE PostgreSQL transaction:
           ├─ INSERT INTO transfers (transfer_id, …)    the step's token; there already:
           │                                            applied before → change nothing
           ├─ SELECT … FOR UPDATE, both rows by id      one lock order: no deadlock
           ├─ UPDATE accounts − amount WHERE enough     else 409 (404: no such account)
           └─ UPDATE accounts + amount
         COMMIT, and only then the step's journal entry

A journaled step runs *at least* once: a crash after the COMMIT but before Restate has the
step's result (the service host dies, restate-server dies, the answer is lost) runs it again.
So the step writes its token in the same transaction as its effect, and a retry that finds the
token does nothing: exactly once, whatever crashes, also when an attempt Restate has given up on
(a zombie: frozen past the invoker's timeouts, then awake) commits late — its INSERT meets the
token and its transaction changes nothing. The same transfer_id from any caller, at any time
(also after Restate has forgotten the invocation), is applied once and answers the same.

``NaiveAccounts/Transfer`` is the same transaction without the token: the lesson's "before".
``Accounts`` is a plain service: the database, not a per-key lock, keeps the money consistent
(row locks and the CHECK on the balance), so transfers on the same accounts run side by side.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import restate
from restate import Context, RunOptions, TerminalError

from .. import database
from .payloads import JSON_INPUT, fields

#: The largest amount or balance, in cents (a bigint holds 9.2e18).
MAX_CENTS = 10**15
SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    id text PRIMARY KEY,
    balance_cents bigint NOT NULL CHECK (balance_cents >= 0));
CREATE TABLE IF NOT EXISTS transfers (
    transfer_id text PRIMARY KEY,
    from_account text NOT NULL,
    to_account text NOT NULL,
    amount_cents bigint NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now());
"""
# Restate gives up on an attempt that says nothing for its inactivity + abort timeouts (default
# 1 min + 10 min; restate-server 1.7 adds a 5 s drain) and retries it on a new attempt. A
# transfer takes milliseconds: Accounts gives up after 1 s + 1 s (+ 5 s).
SILENCE = {"inactivity_timeout": timedelta(seconds=1), "abort_timeout": timedelta(seconds=1)}
accounts = database.uses(restate.Service("Accounts", **SILENCE))
naive_accounts = database.uses(restate.Service("NaiveAccounts", **SILENCE))


@dataclass(frozen=True)
class Transfer:
    transfer_id: str
    source: str
    target: str
    amount_cents: int


@accounts.handler(name="Open", input_serde=JSON_INPUT)
async def open_account(ctx: Context, request: Any) -> dict[str, Any]:
    wanted = fields(request, "account", account=str, balance_cents=int)
    account, balance = _account_id(wanted["account"]), _cents(wanted, "balance_cents", 0)
    # One transaction: opened now, or already open with this balance (a retry, a repeat).
    await ctx.run_typed("open", _open, RunOptions(), account, balance)
    return {"account": account, "balance_cents": balance}


@accounts.handler(name="Transfer", input_serde=JSON_INPUT)
async def transfer(ctx: Context, request: Any) -> dict[str, Any]:
    wanted = parse_transfer(request)
    # One transaction: the token, the debit, the credit; a retry finds the token.
    await ctx.run_typed("transfer", apply, RunOptions(), wanted, True)
    return {"transfer_id": wanted.transfer_id, "status": "applied"}


@accounts.handler(name="Balance", input_serde=JSON_INPUT)
async def balance(ctx: Context, request: Any) -> dict[str, Any]:
    account = _account_id(fields(request, "balance request", account=str)["account"])
    # A durable read: the result is journaled, and a replay reads the journal, not the table.
    cents = await ctx.run_typed("read balance", read_balance, RunOptions(), account)
    return {"account": account, "balance_cents": cents}


@naive_accounts.handler(name="Transfer", input_serde=JSON_INPUT)
async def naive_transfer(ctx: Context, request: Any) -> dict[str, Any]:
    wanted = parse_transfer(request)
    # BEFORE: the same transaction without the token — a retry moves the money again.
    await ctx.run_typed("transfer", apply, RunOptions(), wanted, False)
    return {"transfer_id": wanted.transfer_id, "status": "applied"}


def parse_transfer(request: Any) -> Transfer:
    """The transfer in ``request``, else TerminalError(400) naming the field."""
    wanted = fields(request, "transfer", transfer_id=str, amount_cents=int)
    ends = fields(request, "transfer", **{"from": str, "to": str})
    source, target = _account_id(ends["from"]), _account_id(ends["to"])
    if source == target:
        raise TerminalError("malformed transfer: 'from' and 'to' are the same account", 400)
    if not 0 < wanted["amount_cents"] <= MAX_CENTS:
        raise TerminalError(f"malformed transfer: amount_cents must be from 1 to {MAX_CENTS:,}",
                            400)
    return Transfer(_account_id(wanted["transfer_id"], "transfer_id"), source, target,
                    wanted["amount_cents"])


def _account_id(value: str, what: str = "account") -> str:
    if not value.strip() or len(value) > 200:
        raise TerminalError(f"malformed request: {what!r} must be 1 to 200 characters", 400)
    return value


def _cents(request: dict[str, Any], name: str, minimum: int) -> int:
    if not minimum <= request[name] <= MAX_CENTS:
        raise TerminalError(f"malformed request: {name} must be from {minimum} to "
                            f"{MAX_CENTS:,}", 400)
    return int(request[name])


# --- the effects: transactions on your own database ---------------------------------------

def apply(transfer: Transfer, with_token: bool) -> None:
    """Move the money in one transaction (with the transfer's token, or not: the "before")."""
    with script.attempt(transfer.transfer_id):  # a lesson may freeze or hold this attempt
        with connect() as conn, conn.transaction():
            if with_token:
                inserted = conn.execute(
                    "INSERT INTO transfers (transfer_id, from_account, to_account, amount_cents)"
                    " VALUES (%s, %s, %s, %s) ON CONFLICT (transfer_id) DO NOTHING RETURNING 1",
                    (transfer.transfer_id, transfer.source, transfer.target,
                     transfer.amount_cents)).fetchone()
                if inserted is None:  # applied before: by a crashed attempt, a zombie, a repeat
                    _same_as_before(conn, transfer)
                    return
            # Both rows locked in one order (by id): two transfers the opposite way between
            # the same accounts wait for each other instead of deadlocking.
            conn.execute("SELECT 1 FROM accounts WHERE id IN (%s, %s) ORDER BY id FOR UPDATE",
                         (transfer.source, transfer.target))
            debited = conn.execute(
                "UPDATE accounts SET balance_cents = balance_cents - %s"
                " WHERE id = %s AND balance_cents >= %s RETURNING id",
                (transfer.amount_cents, transfer.source, transfer.amount_cents)).fetchone()
            if debited is None:
                _refuse(conn, transfer.source, "not enough money")
            credited = conn.execute(
                "UPDATE accounts SET balance_cents = balance_cents + %s WHERE id = %s"
                " RETURNING id", (transfer.amount_cents, transfer.target)).fetchone()
            if credited is None:
                _refuse(conn, transfer.target, "")


def _same_as_before(conn: Any, transfer: Transfer) -> None:
    before = conn.execute("SELECT from_account, to_account, amount_cents FROM transfers"
                          " WHERE transfer_id = %s", (transfer.transfer_id,)).fetchone()
    if tuple(before) != (transfer.source, transfer.target, transfer.amount_cents):
        raise TerminalError(f"transfer {transfer.transfer_id[:60]!r} was already used for "
                            "another transfer: use a new transfer_id", 409)


def _refuse(conn: Any, account: str, why: str) -> None:
    """TerminalError (the transaction rolls back): 404 for no such account, else 409."""
    if conn.execute("SELECT 1 FROM accounts WHERE id = %s", (account,)).fetchone() is None:
        raise TerminalError(f"no account {account[:60]!r}: open it first", 404)
    raise TerminalError(f"{why} in {account[:60]!r}: nothing was moved", 409)


def _open(account: str, balance_cents: int) -> None:
    with connect() as conn, conn.transaction():
        conn.execute("INSERT INTO accounts (id, balance_cents) VALUES (%s, %s)"
                     " ON CONFLICT (id) DO NOTHING", (account, balance_cents))
        now = conn.execute("SELECT balance_cents FROM accounts WHERE id = %s",
                           (account,)).fetchone()[0]
    if now != balance_cents:
        raise TerminalError(f"account {account[:60]!r} exists, with another balance", 409)


def read_balance(account: str) -> int:
    with connect() as conn:
        row = conn.execute("SELECT balance_cents FROM accounts WHERE id = %s",
                           (account,)).fetchone()
    if row is None:
        raise TerminalError(f"no account {account[:60]!r}: open it first", 404)
    return int(row[0])


_schema_for: set[str] = set()


def connect() -> Any:
    """A connection to your database, its tables made on first use (once per database)."""
    conn = database.connect()
    if database.url() not in _schema_for:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(11)")  # one creator at a time
            conn.execute(SCHEMA)
        _schema_for.add(database.url())
    return conn


# --- scripted failures, for the lessons and the tests (nothing happens unless asked) ------

@dataclass
class Freeze:
    frozen: threading.Event = field(default_factory=threading.Event)  # it stopped, mid-attempt
    thaw: threading.Event = field(default_factory=threading.Event)  # set: it goes on
    ended: threading.Event = field(default_factory=threading.Event)  # its transaction is over


@dataclass
class Script:
    """Where a lesson stops a transfer's next attempt: held after its COMMIT for
    ``hold_seconds`` (time for a crash to land before the step's result reaches Restate), or
    frozen before its transaction until thawed (a zombie, once Restate has given up on it)."""

    hold_seconds: float = 0.5
    holds: dict[str, threading.Event] = field(default_factory=dict)
    freezes: dict[str, Freeze] = field(default_factory=dict)

    def hold_after_commit(self, transfer_id: str) -> threading.Event:
        """Hold the next attempt of ``transfer_id`` after its COMMIT (or its refusal: rolled
        back); the event is set then."""
        self.holds[transfer_id] = threading.Event()
        return self.holds[transfer_id]

    def freeze(self, transfer_id: str) -> Freeze:
        """Freeze the next attempt of ``transfer_id`` before its transaction."""
        self.freezes[transfer_id] = Freeze()
        return self.freezes[transfer_id]

    @contextmanager
    def attempt(self, transfer_id: str) -> Iterator[None]:
        if (zombie := self.freezes.pop(transfer_id, None)) is not None:
            zombie.frozen.set()
            zombie.thaw.wait(120)
        try:
            yield
        finally:
            if zombie is not None:
                zombie.ended.set()
            if (ended := self.holds.pop(transfer_id, None)) is not None:
                ended.set()
                threading.Event().wait(self.hold_seconds)


script = Script()
