"""Checks for the exercises of notebook 09 (many at once)."""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Any

from ...lab import Lab
from ...lab.admin import sql_string
from ...simulated import quotes
from ...views import parse_time
from .checking import (
    HOST,
    SERVER,
    check,
    crash,
    end_unfinished,
    eventually,
    expect,
    journal_entries,
    settle,
)

ROUTE = "AMS-LIS"
#: 9.1: the airlines' latencies in two searches, each counted from the answer of the airline
#: before it in AFTER: KL, IB and TP answer first (in that order) — LH soon after them in the
#: first, TP late in the second (so that no fixed deadline is right).
LATENCIES = ({"KL": 0.2, "IB": 0.3, "TP": 0.3, "LH": 0.6, "BA": 30.0},
             {"KL": 0.2, "IB": 0.3, "TP": 2.0, "LH": 30.0, "BA": 30.0})
AFTER = {"IB": "KL", "TP": "IB", "LH": "TP"}
FIRST_THREE = ["KL", "IB", "TP"]
#: 9.1: how long the check waits for an answer (LH and BA take 30 s at most).
QUICK_WITHIN = 6.0
#: 9.2: one search per user every this many seconds.
SEARCH_EVERY = 1.0


def _quotes_started(lab: Lab, search: str) -> list[dict[str, Any]]:
    """The quote calls a search made: when each was created, and whether it has ended."""
    return lab.admin.sql("SELECT target_handler_name, created_at, status, completion_failure"
                         f" FROM sys_invocation WHERE invoked_by_id = {sql_string(search)}"
                         " AND target_service_name = 'Airlines'")


@check("Exercise 9.1 · the first three answers")
def check_first_three(lab: Lab) -> None:
    try:
        for latencies in LATENCIES:
            for airline, latency in latencies.items():
                quotes.script(airline, latency=latency, after=AFTER.get(airline))
            _first_three(lab, latencies, crash_while_waiting=latencies is LATENCIES[-1])
    finally:
        for airline in LATENCIES[0]:
            quotes.script(airline)
        # Nothing a wrong answer left running holds a permit for 30 s (a cancelled quote
        # gives it back; a killed one would not).
        for row in lab.admin.sql("SELECT id FROM sys_invocation WHERE status <> 'completed'"
                                 " AND invoked_by_service_name = 'QuickSearch'"):
            lab.admin.cancel(row["id"])


def _first_three(lab: Lab, latencies: dict[str, float], crash_while_waiting: bool) -> None:
    search = lab.ingress.send("QuickSearch", "Search", {"route": ROUTE})
    if crash_while_waiting and eventually(lambda: _answered(lab, search) >= 2, QUICK_WITHIN):
        crash(lab, SERVER, "while the search waits for its third answer")
    found = settle(lab, search, "QuickSearch/Search", within=QUICK_WITHIN,
                   stuck_hint="LH and BA take 30 s: stop waiting once three airlines have "
                   "answered — `async for done in restate.as_completed(*calls.values())`, "
                   "and break at the third", cancel_if_stuck=True)
    answered = found.get("answered") if isinstance(found, dict) else None
    expect(answered == FIRST_THREE,
           f"\"answered\": the first three to answer, in that order: {FIRST_THREE}",
           f"with the latencies (s) {latencies}, each after the answer before it, the "
           f"answer was {found}",
           "take the answers in the order they arrive (restate.as_completed), not in the "
           "order of the calls, and stop at the third — not at a deadline: how long three "
           "answers take is not known in advance")
    expect(found.get("best") == {"airline": "TP", "fare": quotes.BASE_FARES["TP"]},
           "\"best\": the cheapest of those three (TP, 190)", f"the answer was {found}",
           "keep each answer's fare and return the one with the lowest \"fare\"")

    ended = eventually(lambda: _answered(lab, search) == len(quotes.AIRLINES), 3)
    expect(ended, "the two slower quote calls cancelled once the answer is known",
           lambda: f"{len(quotes.AIRLINES) - _answered(lab, search)} quote call(s) still "
           "running after the answer", "cancel every call that did not answer in time: "
           "`await call.cancel_invocation()`")


@check("Exercise 9.2 · one search a second per user")
def check_paced_search(lab: Lab) -> None:
    ada, bob = (f"{name}-{uuid.uuid4().hex[:6]}" for name in ("ada", "bob"))
    sent = time.time()
    searches = [lab.ingress.send("UserSearch", "Search", {"user": ada, "route": ROUTE})
                for _ in range(3)]
    try:
        _paced(lab, sent, searches, bob)
    finally:  # whatever the answer did, none of its searches keeps running
        ids = ", ".join(sql_string(search) for search in searches)
        end_unfinished(lab, f"id IN ({ids}) OR invoked_by_id IN ({ids}) OR "
                            "target_service_name = 'UserSearch'")


def _paced(lab: Lab, sent: float, searches: list[str], bob: str) -> None:
    # Bob searches once Ada's three searches have taken their tokens (each reserves one: the
    # third is due 2 s from now) — or after 3 s, if they take none.
    eventually(lambda: _tokens_taken(lab, searches) == len(searches), 3)
    bob_sent = time.time()
    bobs = lab.ingress.send("UserSearch", "Search", {"user": bob, "route": ROUTE})
    # Bob's search under way (or 3 s gone), Ada's last one still waits its turn: a crash.
    eventually(lambda: _quotes_started(lab, bobs), 3)
    crash(lab, HOST, "while Ada's last search waits for its turn")
    for search in [*searches, bobs]:
        found = settle(lab, search, "UserSearch/Search", within=3 * SEARCH_EVERY + 3,
                       cancel_if_stuck=True)
        expect(isinstance(found, dict) and len(found.get("fares", [])) == 5,
               "every search to answer with five fares", f"a search answered {found}",
               "leave the fan-out as it is; only wait for a token before it")
    started = [_fan_out_start(lab, search) for search in searches]
    early = [round(moment - sent, 2) for moment in sorted(started)]
    expect(all(moment >= sent + number * SEARCH_EVERY - 0.05
               for number, moment in enumerate(sorted(started))),
           f"Ada's three searches to ask the airlines at least {SEARCH_EVERY:g} s apart",
           f"they asked the airlines {early} s after they were sent",
           "before the fan-out, wait for a token of a bucket of this user's own: "
           "`await fan_out.wait_for_token(ctx, f\"search-{request['user']}\", per_second=1)`")
    bob_waited = _fan_out_start(lab, bobs) - bob_sent
    # Held up: a second or more later than Ada's first search took to start (on a busy
    # machine that is more than an instant; a token is a second).
    expect(bob_waited < max(1.5, min(started) - sent + 1), "Bob's search not held up by Ada's",
           f"Bob's search asked the airlines {bob_waited:.1f} s after it was sent (Ada's first:"
           f" {min(started) - sent:.1f} s)",
           "one bucket per user: a key with the user in it, not one for every search "
           "(or every route) — and a wait that blocks nobody else (await, never time.sleep)")
    waits = [_durable_waits(lab, search) for search in searches]
    expect(sorted(waits)[1:] >= [1, 1], "Ada's later searches to wait durably: a timer or a "
           "call in their journals, which Restate keeps through a crash",
           f"the durable waits in the journals of Ada's searches: {waits} — they waited in "
           "the process (asyncio.sleep, time.sleep, a time kept in memory), which a restart "
           "forgets", "take the token from Restate: `await fan_out.wait_for_token(ctx, "
           "f\"search-{request['user']}\", per_second=1)` (a call and a durable ctx.sleep)")


def _durable_waits(lab: Lab, search: str) -> int:
    """Timers and calls in the journal of ``search``, besides its five quote calls."""
    kinds = [e["entry_type"] for e in journal_entries(lab, search)]
    return kinds.count("Command: Sleep") + kinds.count("Command: Call") - len(quotes.AIRLINES)


def _answered(lab: Lab, search: str) -> int:
    """How many quote calls of ``search`` have ended (answered, or cancelled)."""
    return sum(row["status"] == "completed" for row in _quotes_started(lab, search))


def _tokens_taken(lab: Lab, searches: list[str]) -> int:
    """How many RateLimiter/Take calls of ``searches`` have answered."""
    return int(lab.admin.sql(
        "SELECT count(*) AS n FROM sys_invocation WHERE target_service_name = 'RateLimiter'"
        " AND status = 'completed' AND invoked_by_id IN ("
        + ", ".join(sql_string(search) for search in searches) + ")")[0]["n"])


def _fan_out_start(lab: Lab, search: str) -> float:
    moments: list[datetime] = [parse_time(row["created_at"])
                               for row in _quotes_started(lab, search)]
    return min(moments).timestamp() if moments else float("inf")
