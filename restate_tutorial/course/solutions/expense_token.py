"""Exercise 13.1: only the manager decides — the token of their message, kept in the state."""

from __future__ import annotations

import secrets

import restate
from restate import RunOptions, TerminalError, WorkflowContext, WorkflowSharedContext

from restate_tutorial.simulated import mailer

expense_claim = restate.Workflow("ExpenseClaim")


@expense_claim.main(name="Run")
async def run(ctx: WorkflowContext, claim: dict) -> dict:
    token = await ctx.run_typed("decision token", secrets.token_urlsafe, RunOptions(), 16)
    ctx.set("token", token)  # in Restate's state: Decide reads it, whatever restarts
    await ctx.run_typed("ask manager", mailer.notify, RunOptions(), claim["manager"],
                        f"Approve claim {ctx.key()}?", f"Decide with token {token}",
                        f"{ctx.key()}-ask")
    decision = await ctx.promise("decision", type_hint=dict).value()
    ctx.set("status", "approved" if decision["approved"] else "rejected")
    return {"approved": decision["approved"], "by": claim["manager"]}


@expense_claim.handler(name="Decide")
async def decide(ctx: WorkflowSharedContext, decision: dict) -> str:
    # Refuse before anything changes: a resolved promise stays resolved.
    if decision.get("token") != await ctx.get("token", type_hint=str):
        raise TerminalError(f"claim {ctx.key()}: only its manager can decide", 403)
    try:
        await ctx.promise("decision", type_hint=dict).resolve({"approved": decision["approved"]})
    except TerminalError:
        raise TerminalError(f"claim {ctx.key()} is decided already", 409) from None
    return "decided"
