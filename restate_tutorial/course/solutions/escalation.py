"""Exercise 7.2: when the approver says nothing in time, ask a second one before giving up."""

from __future__ import annotations

from datetime import timedelta

import restate
from restate import RunOptions, TerminalError, WorkflowContext, WorkflowSharedContext

from restate_tutorial.simulated import mailer

escalating_approval = restate.Workflow("EscalatingApproval")


@escalating_approval.main(name="Run")
async def run(ctx: WorkflowContext, request: dict) -> dict:
    timeout = timedelta(seconds=request["timeout_seconds"])
    decision = ctx.promise("decision", type_hint=dict)
    await ask(ctx, request["approver"], "first")
    winner, value = await restate.select(decision=decision.value(), timeout=ctx.sleep(timeout))
    if winner == "timeout":
        # Nobody answered in time: ask the second approver, and wait as long once more.
        await ask(ctx, request["escalate_to"], "escalated")
        winner, value = await restate.select(decision=decision.value(),
                                             timeout=ctx.sleep(timeout))
    if winner == "timeout":
        raise TerminalError(f"no decision within {timeout.total_seconds():g} s", 408)
    if not value["approved"]:
        raise TerminalError(f"rejected by {value['by']}", 403)
    return {"approved_by": value["by"]}


async def ask(ctx: WorkflowContext, approver: str, round_name: str) -> None:
    """Send ``approver`` the request: a journaled step, so one message however often it runs."""
    await ctx.run_typed(f"ask {round_name} approver", mailer.notify, RunOptions(), approver,
                        f"Approve trip {ctx.key()}?", "Decide with EscalatingApproval/Decide.",
                        f"{ctx.key()}-{round_name}")


@escalating_approval.handler(name="Decide")
async def decide(ctx: WorkflowSharedContext, decision: dict) -> str:
    try:
        await ctx.promise("decision", type_hint=dict).resolve(decision)
    except TerminalError:  # the promise is completed already: the first decision stands
        raise TerminalError(f"trip {ctx.key()} is decided already", 409) from None
    return "decided"
