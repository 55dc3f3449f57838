"""Exercise 10.1: a tool of your own — the agent emails the itinerary, once."""

from __future__ import annotations

import restate
from restate.ext.openai import durable_function_tool, restate_object_context

from restate_tutorial.patterns import agent
from restate_tutorial.patterns.keys import unique_key
from restate_tutorial.simulated import mailer

itinerary_agent = restate.VirtualObject("ItineraryAgent")


@durable_function_tool
async def email_itinerary(address: str) -> str:
    """Email the itinerary of this conversation to an e-mail address."""
    ctx = restate_object_context()
    # A step of its own, with a key: a retry of the turn does not send it again.
    message_id = await unique_key(ctx, "message id")
    await ctx.run_typed("email itinerary", mailer.notify, to=address, subject="Your trip",
                        body=f"The itinerary of conversation {ctx.key()}",
                        message_id=message_id)
    return f"sent to {address}"


assistant = agent.travel_assistant.clone(name="ItineraryAgent",
                                         tools=[agent.search_fares, email_itinerary])


@itinerary_agent.handler(name="Message")
async def message(ctx: restate.ObjectContext, request: dict) -> dict:
    return await agent.converse(ctx, request, assistant)
