"""A workflow that waits for a person: a trip is booked only once its approver says yes.

    TripApproval/Run (trip id)   the original example's booking + "approver", "timeout_seconds"
      ├─ run "decision token"           an unguessable token, for the approver only
      ├─ run "notify approver"          a message with the exact curl of the decision (token in it)
      ├─ select: promise "decision" ∥ sleep(timeout)   durable, both: crashes change nothing
      │    ├─ approved  → BookingWorkflow/Run (same trip id) → its result + "approved_by"
      │    ├─ rejected  → TerminalError 403 "rejected by <by>: <reason>", nothing reserved
      │    └─ timeout   → the promise is rejected (closed) first; the approver is told;
      │                   TerminalError 408
      └─ state "status": waiting → approved → booked | failed; rejected; expired

    TripApproval/Decide (shared: the signal)   {"approved": bool, "token": str, "reason": str}
      completes the promise — the first decision wins; a second one is 409 naming the first;
      a trip that is not waiting (never submitted, or expired) is 404; without the token sent
      to the approver it is 403 and changes nothing; "decided by" is that approver, always
    TripApproval/Status (shared: the query)    {"status", "approver", "decided_by"}

The promise is the one place where the decision and the timeout meet: whichever completes it
first wins, so a decision that lands while the timer fires is either honoured or refused
with 404 — never accepted and then ignored. Anyone who can reach the ingress can call Decide:
the token, which only the approver's message carries, is what makes a decision theirs.
"""

from __future__ import annotations

import hmac
import re
from datetime import timedelta
from typing import Any

import restate
from restate import RunOptions, TerminalError, WorkflowContext, WorkflowSharedContext

from ..simulated import mailer
from .keys import unique_key
from .payloads import JSON_INPUT, clip, fields, seconds
from .sagas import parse_booking
from .sagas import run as book

#: The longest an approval may wait (a week); the default is a day.
MAX_TIMEOUT_SECONDS = 7 * 86_400
DEFAULT_TIMEOUT_SECONDS = 86_400
DECISION = "decision"

log = restate.getLogger("restate_tutorial.patterns.approvals")
trip_approval = restate.Workflow("TripApproval")
#: The subject of the message that asks the approver.
SUBJECT = "Approve trip {}?"


@trip_approval.main(name="Run", input_serde=JSON_INPUT)
async def run(ctx: WorkflowContext, request: Any) -> dict[str, Any]:
    parse_booking(request)  # a malformed booking is refused now, not after the approval
    approver = fields(request, "approval request", approver=str)["approver"]
    timeout = seconds(request.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS),
                      "approval request", "timeout_seconds", MAX_TIMEOUT_SECONDS)
    booking = {k: v for k, v in request.items() if k not in ("approver", "timeout_seconds")}
    trip = ctx.key()
    # The approver's token (journaled: the same one on every retry, a new one per run).
    token = await unique_key(ctx, "decision token")
    ctx.set("token", token)
    ctx.set("approver", approver)
    ctx.set("status", "waiting")

    # Ask the approver, with the exact request that decides (journaled: asked once).
    message_id = await unique_key(ctx, "message id")
    await ctx.run_typed("notify approver", mailer.notify, RunOptions(), approver,
                        SUBJECT.format(trip), _decide_curl(trip, token), message_id)
    log.info(f"Asked {clip(approver)} to approve trip {clip(trip)}")

    # Wait for the decision or the deadline, whichever comes first (both durable).
    decision = ctx.promise(DECISION, type_hint=dict)
    winner, value = await restate.select(decision=decision.value(),
                                         timeout=ctx.sleep(timedelta(seconds=timeout)))
    if winner == "timeout":
        try:  # close the promise: a later decision is refused (404), never silently ignored
            await decision.reject(f"no decision within {timeout:g} s", 408)
        except TerminalError:  # a decision completed it first: it stands
            winner, value = "decision", await decision.value()
    if winner == "timeout":
        ctx.set("status", "expired")
        await ctx.run_typed("notify expiry", mailer.notify, RunOptions(), approver,
                            f"Trip {trip} expired", f"No decision within {timeout:g} s.",
                            f"{message_id}-expired")
        raise TerminalError(f"trip {trip}: no decision within {timeout:g} s", 408)

    ctx.set("decided_by", value["by"])
    if not value["approved"]:
        ctx.set("status", "rejected")
        raise TerminalError(f"rejected by {value['by']}: {value['reason']}", 403)

    # Approved: book it, with the saga of notebook 01, under the same trip id.
    ctx.set("status", "approved")
    try:
        result = await ctx.workflow_call(book, key=trip, arg=booking)
    except TerminalError:
        ctx.set("status", "failed")
        raise
    ctx.set("status", "booked")
    return {**result, "approved_by": value["by"]}


@trip_approval.handler(name="Decide", input_serde=JSON_INPUT)
async def decide(ctx: WorkflowSharedContext, request: Any) -> dict[str, Any]:
    decision = fields(request, "decision", token=str, reason=str)
    if not isinstance(request.get("approved"), bool):
        raise TerminalError("malformed decision: field 'approved' must be true or false", 400)
    if await ctx.get("status", type_hint=str) is None:
        raise TerminalError(f"trip {clip(ctx.key())} is not waiting for a decision (never "
                            "submitted)", 404)
    # Only the approver's token decides, and the decision is theirs whoever sends it.
    token = await ctx.get("token", type_hint=str) or ""
    if not hmac.compare_digest(decision.pop("token").encode(), token.encode()):
        raise TerminalError(f"trip {clip(ctx.key())}: that is not the token sent to its "
                            "approver; only they can decide", 403)
    decision.update(approved=request["approved"],
                    by=await ctx.get("approver", type_hint=str))
    promise = ctx.promise(DECISION, type_hint=dict)
    try:
        await promise.resolve(decision)
    except TerminalError:  # completed already: by a decision, or closed by the timeout
        first = await _first_decision(promise)
        if first is None:
            raise TerminalError(f"trip {clip(ctx.key())} is not waiting for a decision any more "
                                "(it expired)", 404) from None
        raise TerminalError(f"trip {clip(ctx.key())} was already {_verdict(first)} by {first['by']}"
                            "; that decision stands", 409) from None
    return {"trip": ctx.key(), "decision": _verdict(decision)}


@trip_approval.handler(name="Status")
async def status(ctx: WorkflowSharedContext) -> dict[str, Any]:
    return {"status": await ctx.get("status", type_hint=str) or "unknown",
            "approver": await ctx.get("approver", type_hint=str),
            "decided_by": await ctx.get("decided_by", type_hint=str)}


async def _first_decision(promise: Any) -> dict[str, Any] | None:
    """The decision that completed the promise, or None if the timeout closed it."""
    try:
        return await promise.peek()
    except TerminalError:  # rejected: the timeout closed it
        return None


def _verdict(decision: dict[str, Any]) -> str:
    return "approved" if decision["approved"] else "rejected"


def trip_to_approve(subject: str) -> str:
    """The trip id in the subject of a message that asks for an approval."""
    before, after = SUBJECT.split("{}")
    return subject.removeprefix(before).removesuffix(after)


def token_for(trip: str, inbox: list[dict[str, str]]) -> str:
    """The decision token in the latest message of ``inbox`` that asks to approve ``trip``."""
    for message in reversed(inbox):
        found = re.search(r'"token": "([^"]+)"', message["body"])
        if message["subject"] == SUBJECT.format(trip) and found:
            return found[1]
    raise ValueError(f"no message in this inbox asks to approve trip {trip}")


def _decide_curl(trip: str, token: str) -> str:
    body = f'{{"approved": true, "token": "{token}", "reason": "ok"}}'
    return (f"curl localhost:8080/TripApproval/{trip}/Decide -H 'content-type: "
            f"application/json' -d '{body}'")
