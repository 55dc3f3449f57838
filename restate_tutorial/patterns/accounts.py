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

    Accounts/AddInterest {"account", "month", "rate_bp"}        read, compute, write back
      └─ run "read account"   a durable read: (balance, version), journaled
         run "pay interest"   UPDATE … SET balance = read + interest, version + 1
                                WHERE version = the version read      (optimistic concurrency)
                              no row: the account moved on since the read — the month's token
                                there? paid before; else read again, and try again

A write computed from a read is only as good as the read. A replay reads the journal, not the
table, and a zombie wakes up with what it read before it froze: both would write an old balance
over newer money. The version check refuses any write whose read is no longer the row's.

``NaiveAccounts`` is the "before" of both: Transfer without the token, AddInterest writing what
it computed without the version check.
``Accounts`` is a plain service: the database, not a per-key lock, keeps the money consistent
(row locks and the CHECK on the balance), so transfers on the same accounts run side by side.
"""

from __future__ import annotations

import re
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
ALTER TABLE accounts ADD COLUMN IF NOT EXISTS version bigint NOT NULL DEFAULT 0;
CREATE TABLE IF NOT EXISTS transfers (
    transfer_id text PRIMARY KEY,
    from_account text NOT NULL,
    to_account text NOT NULL,
    amount_cents bigint NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS interest (
    account text NOT NULL,
    month text NOT NULL,
    interest_cents bigint NOT NULL,
    PRIMARY KEY (account, month));
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


@accounts.handler(name="AddInterest", input_serde=JSON_INPUT)
async def add_interest(ctx: Context, request: Any) -> dict[str, Any]:
    wanted = parse_interest(request)
    while True:
        # A durable read: (balance, version) journaled — a replay gets this, not the table.
        seen = await ctx.run_typed("read account", read_account, RunOptions(), wanted.account)
        # Written only if the row is still at the version read; else read again.
        paid = await ctx.run_typed("pay interest", pay_interest, RunOptions(), wanted, seen, True)
        if paid is not None:
            return {"account": wanted.account, "month": wanted.month, "interest_cents": paid}


@naive_accounts.handler(name="AddInterest", input_serde=JSON_INPUT)
async def naive_add_interest(ctx: Context, request: Any) -> dict[str, Any]:
    wanted = parse_interest(request)
    seen = await ctx.run_typed("read account", read_account, RunOptions(), wanted.account)
    # BEFORE: writes what it computed from its read, whatever the row holds now.
    paid = await ctx.run_typed("pay interest", pay_interest, RunOptions(), wanted, seen, False)
    return {"account": wanted.account, "month": wanted.month, "interest_cents": paid}


@dataclass(frozen=True)
class Interest:
    account: str
    month: str  # "2026-11": paid once per account and month
    rate_bp: int  # basis points: 100 is 1 %

    @property
    def token(self) -> str:
        return f"{self.account}/{self.month}"


def parse_interest(request: Any) -> Interest:
    """The interest in ``request``, else TerminalError(400) naming the field."""
    wanted = fields(request, "interest", account=str, month=str, rate_bp=int)
    if not re.fullmatch(r"[0-9]{4}-(0[1-9]|1[0-2])", wanted["month"]):  # ASCII digits only
        raise TerminalError("malformed interest: month must be YYYY-MM, e.g. 2026-11", 400)
    if not 0 < wanted["rate_bp"] <= 10_000:
        raise TerminalError("malformed interest: rate_bp must be from 1 to 10,000 (100 %)", 400)
    return Interest(_account_id(wanted["account"]), wanted["month"], wanted["rate_bp"])


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
                ", version = version + 1 WHERE id = %s AND balance_cents >= %s RETURNING id",
                (transfer.amount_cents, transfer.source, transfer.amount_cents)).fetchone()
            if debited is None:
                _refuse(conn, transfer.source, "not enough money")
            credited = conn.execute(
                "UPDATE accounts SET balance_cents = balance_cents + %s, version = version + 1"
                " WHERE id = %s RETURNING id", (transfer.amount_cents, transfer.target)).fetchone()
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


def pay_interest(interest: Interest, seen: dict[str, int], versioned: bool) -> int | None:
    """Write the balance read plus its interest: the interest paid (now or before), or None
    when the row has moved on since the read (versioned only: read again)."""
    from psycopg import Rollback

    cents = seen["balance_cents"] * interest.rate_bp // 10_000
    with script.attempt(interest.token), connect() as conn:  # a lesson may freeze or hold it
        with conn.transaction():
            check = " AND version = %(version)s" if versioned else ""
            written = conn.execute(
                "UPDATE accounts SET balance_cents = %(balance)s, version = version + 1"
                f" WHERE id = %(account)s{check} RETURNING 1",
                {"balance": seen["balance_cents"] + cents, "account": interest.account,
                 "version": seen["version"]}).fetchone()
            if written and not versioned:
                return cents
            if written and conn.execute(  # the month's token, in the same transaction
                    "INSERT INTO interest (account, month, interest_cents) VALUES (%s, %s, %s)"
                    " ON CONFLICT DO NOTHING RETURNING 1",
                    (interest.account, interest.month, cents)).fetchone():
                return cents
            raise Rollback()  # an old read, or paid before: change nothing
        before = conn.execute("SELECT interest_cents FROM interest WHERE account = %s AND"
                              " month = %s", (interest.account, interest.month)).fetchone()
    return None if before is None else int(before[0])


def read_account(account: str) -> dict[str, int]:
    with connect() as conn:
        row = conn.execute("SELECT balance_cents, version FROM accounts WHERE id = %s",
                           (account,)).fetchone()
    if row is None:
        raise TerminalError(f"no account {account[:60]!r}: open it first", 404)
    return {"balance_cents": int(row[0]), "version": int(row[1])}


def _open(account: str, balance_cents: int) -> None:
    with connect() as conn, conn.transaction():
        conn.execute("INSERT INTO accounts (id, balance_cents) VALUES (%s, %s)"
                     " ON CONFLICT (id) DO NOTHING", (account, balance_cents))
        now = conn.execute("SELECT balance_cents FROM accounts WHERE id = %s",
                           (account,)).fetchone()[0]
    if now != balance_cents:
        raise TerminalError(f"account {account[:60]!r} exists, with another balance", 409)


def read_balance(account: str) -> int:
    return read_account(account)["balance_cents"]


def read_balances(accounts: list[str]) -> dict[str, int]:
    """The balances of ``accounts`` in the table (those that exist)."""
    with connect() as conn:
        return dict(conn.execute("SELECT id, balance_cents FROM accounts WHERE id = ANY(%s)",
                                 (accounts,)).fetchall())


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
    """Where a lesson stops the next attempt of a write — a transfer (key: its transfer_id),
    interest (key: its Interest.token): held after its COMMIT for ``hold_seconds`` (time for a
    crash to land before the step's result reaches Restate), or frozen before its transaction
    until thawed (a zombie, once Restate has given up on it)."""

    hold_seconds: float = 0.5
    holds: dict[str, threading.Event] = field(default_factory=dict)
    freezes: dict[str, Freeze] = field(default_factory=dict)

    def hold_after_commit(self, key: str) -> threading.Event:
        """Hold the next attempt of ``key`` after its COMMIT (or its refusal: rolled
        back); the event is set then."""
        self.holds[key] = threading.Event()
        return self.holds[key]

    def freeze(self, key: str) -> Freeze:
        """Freeze the next attempt of ``key`` before its transaction."""
        self.freezes[key] = Freeze()
        return self.freezes[key]

    @contextmanager
    def attempt(self, key: str) -> Iterator[None]:
        if (zombie := self.freezes.pop(key, None)) is not None:
            zombie.frozen.set()
            zombie.thaw.wait(120)
        try:
            yield
        finally:
            if zombie is not None:
                zombie.ended.set()
            if (ended := self.holds.pop(key, None)) is not None:
                ended.set()
                threading.Event().wait(self.hold_seconds)


script = Script()
