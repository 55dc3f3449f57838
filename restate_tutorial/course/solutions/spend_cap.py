"""Exercise 10.2: each conversation spends at most CAP_TOKENS tokens on the model."""

from __future__ import annotations

import restate

from restate_tutorial.patterns import agent

frugal_agent = restate.VirtualObject("FrugalAgent")
CAP_TOKENS = 600


@frugal_agent.handler(name="Message")
async def message(ctx: restate.ObjectContext, request: dict) -> dict:
    # The conversation's spend so far, in its own state: the model is not asked once it is over.
    spent = await ctx.get("tokens", type_hint=int) or 0
    if spent >= CAP_TOKENS:
        return {"reply": f"This conversation has used its {CAP_TOKENS} tokens.", "tokens": 0}
    answer = await agent.converse(ctx, request, agent.travel_assistant)
    ctx.set("tokens", spent + answer.get("tokens", 0))
    return answer
