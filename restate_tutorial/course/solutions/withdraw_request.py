"""Exercise 7.1: the traveller withdraws a trip request while it waits for its approver."""

from __future__ import annotations

import restate
from restate import TerminalError, WorkflowContext, WorkflowSharedContext

from restate_tutorial.patterns.sagas import run as book

trip_request = restate.Workflow("TripRequest")


@trip_request.main(name="Run")
async def run(ctx: WorkflowContext, booking: dict) -> dict:
    ctx.set("status", "waiting")
    decision = await ctx.promise("decision", type_hint=dict).value()
    # A withdrawal completed the promise first: the request ends, nothing is booked.
    if decision.get("withdrawn"):
        ctx.set("status", "withdrawn")
        raise TerminalError(f"withdrawn by the traveller: {decision['reason']}", 410)
    if not decision["approved"]:
        ctx.set("status", "rejected")
        raise TerminalError(f"rejected by {decision['by']}", 403)
    ctx.set("status", "booked")
    return await ctx.workflow_call(book, key=ctx.key(), arg=booking)


@trip_request.handler(name="Decide")
async def decide(ctx: WorkflowSharedContext, decision: dict) -> str:
    try:
        await ctx.promise("decision", type_hint=dict).resolve(decision)
    except TerminalError:  # the promise is completed already: the first answer stands
        raise TerminalError(f"trip {ctx.key()} is not waiting any more", 409) from None
    return "decided"


@trip_request.handler(name="Withdraw")
async def withdraw(ctx: WorkflowSharedContext, request: dict) -> str:
    # The same promise as a decision: whichever completes it first wins, the other gets 409.
    try:
        await ctx.promise("decision", type_hint=dict).resolve(
            {"withdrawn": True, "reason": request["reason"]})
    except TerminalError:
        raise TerminalError(f"trip {ctx.key()} is not waiting any more", 409) from None
    return "withdrawn"


@trip_request.handler(name="Status")
async def status(ctx: WorkflowSharedContext) -> str:
    return await ctx.get("status", type_hint=str) or "unknown"
