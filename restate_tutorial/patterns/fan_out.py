"""Many at once: a fare search that asks every airline in parallel, answers by a deadline, and
never asks one airline more than it accepts.

    FareSearch/Search  {"route": "AMS-LIS", "deadline_seconds": 5}
      ├─ call Airlines/Quote × 5       started together, an invocation each       (fan-out)
      ├─ sleep deadline_seconds        a durable timer, raced against the calls
      ├─ as each call ends: its fare, or its failure                              (fan-in)
      └─ the timer first: cancel the calls still running, answer what arrived ("partial")

    Airlines/Quote  {"airline": "KL", "route": "AMS-LIS"}
      ├─ permit from AirlinePermits/<airline>   at most CAPACITY quotes at once; the rest queue
      ├─ run "ask <airline>"                    the airline's API (simulated, see quotes.py)
      └─ permit back — also when the quote fails for good or is cancelled

    AirlinePermits/<airline> (a virtual object: one at a time per airline, so no race)
      Acquire(holder)   a free permit resolves the holder's awakeable now, else it queues
      Release(holder)   frees the holder's permit for the next in the queue (or drops a holder
                        that is still queued: cancelled before its turn)

A crash changes none of it: the calls, the timer and every permit are in Restate's records.
A permit is held by an invocation, not a process: a crashed service host retries the quote
with the permit it held. Only a *kill* (``restate invocations kill``) loses one, as a kill
skips every compensation: cancel a quote instead, and it gives its permit back.
``SearchUnlimited`` is the same search without permits, to show what breaks. Restate has flow
control of its own (``ctx.scope(...)``, ``limit_key``), behind experimental flags in
restate-server 1.7.12: see the README.

The recipe for a rate (not concurrency) limit is at the end: a token bucket per key in a
virtual object, and a durable sleep until the caller's token is due (``PacedMailer``).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import restate
from restate import (
    Context,
    ObjectContext,
    ObjectSharedContext,
    RunOptions,
    TerminalError,
)

from ..simulated import mailer, quotes
from .keys import unique_key
from .payloads import JSON_INPUT, fields, seconds, text

DEFAULT_DEADLINE_SECONDS = 10
MAX_DEADLINE_SECONDS = 300
#: Quotes one airline gets at once: what its API accepts (quotes.CAPACITY).
PERMITS_PER_AIRLINE = quotes.CAPACITY
_ROUTE = re.compile(r"[A-Z]{3}-[A-Z]{3}")

#: What Restate's awakeable ids look like (a permit holder is one).
AWAKEABLE_ID = re.compile(r"(?:sign|prom)_1[A-Za-z0-9_-]{16,200}")
fare_search = restate.Service("FareSearch")
airlines = restate.Service("Airlines")
airline_permits = restate.VirtualObject("AirlinePermits")


def _route(request: Any, what: str) -> str:
    route = fields(request, what, route=str)["route"]
    if not _ROUTE.fullmatch(route):
        raise TerminalError(f"malformed {what}: field 'route' must be two airport codes like "
                            "\"AMS-LIS\"", 400)
    return route


def parse_search(request: Any) -> tuple[str, float]:
    """The route and the deadline of a search request; else TerminalError(400)."""
    route = _route(request, "fare search")
    deadline = seconds(request.get("deadline_seconds", DEFAULT_DEADLINE_SECONDS),
                       "fare search", "deadline_seconds", MAX_DEADLINE_SECONDS)
    return route, deadline


async def _search(ctx: Context, request: Any, quote: Any) -> dict[str, Any]:
    route, deadline = parse_search(request)
    # Fan out: one call per airline, all started before any is awaited.
    waiting = {airline: ctx.service_call(quote, arg={"airline": airline, "route": route})
               for airline in quotes.AIRLINES}
    # The deadline: a durable timer, raced against the calls.
    timer = ctx.sleep(timedelta(seconds=deadline), name="deadline")
    fares: list[dict[str, Any]] = []
    failed: list[dict[str, str]] = []
    # Fan in, in the order the answers arrive, until all are in or the timer fires.
    async for done in restate.as_completed(timer, *waiting.values()):
        if done is timer:
            break
        airline = next(name for name, call in waiting.items() if call is done)
        del waiting[airline]
        try:
            fares.append(await done)
        except TerminalError as failure:  # this airline failed for good: the others still count
            failed.append({"airline": airline, "error": failure.message})
        if not waiting:
            break
    # Too late: cancel what is still running (a cancelled quote gives its permit back).
    for call in waiting.values():
        await call.cancel_invocation()
    fares.sort(key=lambda fare: fare["fare"])
    return {"route": route, "best": fares[0] if fares else None, "fares": fares,
            "partial": bool(waiting), "late": list(waiting), "failed": failed}


@fare_search.handler(name="Search", input_serde=JSON_INPUT)
async def search(ctx: Context, request: Any) -> dict[str, Any]:
    return await _search(ctx, request, quote_with_permit)


@fare_search.handler(name="SearchUnlimited", input_serde=JSON_INPUT)
async def search_unlimited(ctx: Context, request: Any) -> dict[str, Any]:
    """The same search without permits: every quote goes to its airline at once."""
    return await _search(ctx, request, quote_unlimited)


def _parse_quote(request: Any) -> tuple[str, str]:
    airline = fields(request, "quote request", airline=str)["airline"]
    if airline not in quotes.AIRLINES:
        raise TerminalError(f"malformed quote request: no airline {airline!r}", 400)
    return airline, _route(request, "quote request")


async def _ask(ctx: Context, airline: str, route: str) -> dict[str, Any]:
    # The invocation id as the request id: the same in every retry, so a repeat is known.
    return await ctx.run_typed(f"ask {airline}", _quote, RunOptions(), airline, route,
                               ctx.request().id)


async def _quote(airline: str, route: str, request_id: str) -> dict[str, Any]:
    try:
        return await quotes.quote(airline, route, request_id)
    except quotes.NoSuchRoute as failure:  # asking again cannot help: fail for good
        raise TerminalError(str(failure), 404) from None


@airlines.handler(name="Quote", input_serde=JSON_INPUT, ingress_private=True)
async def quote_with_permit(ctx: Context, request: Any) -> dict[str, Any]:
    airline, route = _parse_quote(request)
    async with permit(ctx, airline):
        return await _ask(ctx, airline, route)


@airlines.handler(name="QuoteUnlimited", input_serde=JSON_INPUT, ingress_private=True)
async def quote_unlimited(ctx: Context, request: Any) -> dict[str, Any]:
    airline, route = _parse_quote(request)
    # A 429 is an ordinary error: Restate retries it, with a growing backoff.
    return await _ask(ctx, airline, route)


@contextlib.asynccontextmanager
async def permit(ctx: Context, airline: str) -> AsyncIterator[None]:
    """Hold one of the airline's permits for the ``async with`` block."""
    holder, granted = ctx.awakeable(type_hint=bool)
    # Queue for a permit; the awakeable is resolved when it is ours.
    ctx.object_send(acquire, key=airline, arg=holder)
    try:
        await granted
        yield
    except TerminalError:  # failed for good or cancelled (waiting or holding): give it back
        ctx.object_send(release, key=airline, arg=holder)
        raise
    # Done: give it back. (Not in a `finally`: a retried attempt still holds its permit.)
    ctx.object_send(release, key=airline, arg=holder)


@airline_permits.handler(name="Acquire", input_serde=JSON_INPUT, ingress_private=True)
async def acquire(ctx: ObjectContext, holder: Any) -> None:
    holder = _holder(holder)
    holders = await ctx.get("holders", type_hint=list) or []
    queue = await ctx.get("queue", type_hint=list) or []
    if holder in holders or holder in queue:
        return
    if len(holders) < PERMITS_PER_AIRLINE:
        ctx.set("holders", [*holders, holder])
        ctx.resolve_awakeable(holder, True)
    else:
        ctx.set("queue", [*queue, holder])


@airline_permits.handler(name="Release", input_serde=JSON_INPUT, ingress_private=True)
async def release(ctx: ObjectContext, holder: Any) -> None:
    holder = _holder(holder)
    holders = await ctx.get("holders", type_hint=list) or []
    queue = await ctx.get("queue", type_hint=list) or []
    if holder in queue:  # cancelled before its turn
        queue.remove(holder)
    elif holder in holders:
        holders.remove(holder)
        if queue:  # the next in line gets the permit
            holders.append(queue.pop(0))
            ctx.resolve_awakeable(holders[-1], True)
    ctx.set("holders", holders)
    ctx.set("queue", queue)


@airline_permits.handler(name="Status", kind="shared")
async def permit_status(ctx: ObjectSharedContext) -> dict[str, Any]:
    """How many permits are held and queued — not by whom: a holder's id releases its permit."""
    return {"limit": PERMITS_PER_AIRLINE,
            "held": len(await ctx.get("holders", type_hint=list) or []),
            "queued": len(await ctx.get("queue", type_hint=list) or [])}


def _holder(value: Any) -> str:
    """A permit holder: an awakeable's id, else TerminalError(400) before any state changes."""
    holder = text(value, "permit holder")
    if not AWAKEABLE_ID.fullmatch(holder):
        raise TerminalError("malformed permit holder: not an awakeable id", 400)
    return holder


# --- The rate limit recipe: a token bucket per key, and a durable sleep until the token. ---

rate_limiter = restate.VirtualObject("RateLimiter")
paced_mailer = restate.Service("PacedMailer")
#: What the simulated mail provider allows: two messages a second, no bursts.
MAILS_PER_SECOND = 2.0
#: The buckets whose rate (per second, burst) is this service's, never a caller's; any other
#: key's rate is its callers' (the recipe's own keys, such as a user's searches).
BUCKETS = {"mailer": (MAILS_PER_SECOND, 1)}


@rate_limiter.handler(name="Take", input_serde=JSON_INPUT, ingress_private=True)
async def take(ctx: ObjectContext, limit: Any) -> float:
    """Reserve the key's next token; answers how many seconds until it is due (0: now)."""
    rate = seconds(fields(limit, "rate limit", per_second=(int, float))["per_second"],
                   "rate limit", "per_second", 1_000, minimum=0.01)
    burst = limit.get("burst", 1)
    if not isinstance(burst, int) or isinstance(burst, bool) or not 1 <= burst <= 1_000:
        raise TerminalError("malformed rate limit: burst must be a whole number from 1 to "
                            "1,000", 400)
    now = await ctx.time()
    bucket = await ctx.get("bucket", type_hint=dict) or {"tokens": burst, "at": now}
    # A bucket this service configures keeps its rate, whichever caller asks.
    if BUCKETS.get(ctx.key(), (rate, burst)) != (rate, burst):
        raise TerminalError(f"bucket {ctx.key()} takes {BUCKETS[ctx.key()][0]:g} a second "
                            f"(burst {BUCKETS[ctx.key()][1]}); this call asks {rate:g}", 409)
    # Refill for the time since the last take, up to the burst; then take one (may go below 0:
    # that token is reserved for later).
    tokens = min(burst, bucket["tokens"] + (now - bucket["at"]) * rate) - 1
    ctx.set("bucket", {"tokens": tokens, "at": now})
    return max(0.0, -tokens / rate)


async def wait_for_token(ctx: Context, key: str, per_second: float, burst: int = 1) -> None:
    """Wait (durably) until a token of ``key``'s bucket is ours."""
    due_in = await ctx.object_call(take, key=key, arg={"per_second": per_second, "burst": burst})
    if due_in > 0:
        await ctx.sleep(timedelta(seconds=due_in), name="wait for a token")


@paced_mailer.handler(name="Send", input_serde=JSON_INPUT)
async def send(ctx: Context, request: Any) -> str:
    message = fields(request, "message", to=str, subject=str, body=str)
    # A token first: the provider takes MAILS_PER_SECOND, whoever sends.
    await wait_for_token(ctx, "mailer", MAILS_PER_SECOND)
    message_id = await unique_key(ctx, "message id")
    await ctx.run_typed("send", mailer.notify, RunOptions(), message["to"],
                        message["subject"], message["body"], message_id)
    return message_id
