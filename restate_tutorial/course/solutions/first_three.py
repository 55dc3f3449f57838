"""Exercise 9.1: the best fare of the first three airlines to answer; the others are cancelled."""

from __future__ import annotations

import restate
from restate import Context

from restate_tutorial.patterns import fan_out
from restate_tutorial.simulated import quotes

quick_search = restate.Service("QuickSearch")


@quick_search.handler(name="Search")
async def search(ctx: Context, request: dict) -> dict:
    calls = {airline: ctx.service_call(fan_out.quote_with_permit,
                                       arg={"airline": airline, "route": request["route"]})
             for airline in quotes.AIRLINES}
    answered, fares = [], []
    # In the order the answers arrive; stop at the third.
    async for done in restate.as_completed(*calls.values()):
        airline = next(name for name, call in calls.items() if call is done)
        answered.append(airline)
        fares.append(await done)
        if len(answered) == 3:
            break
    # The slower ones are not needed any more.
    for airline, call in calls.items():
        if airline not in answered:
            await call.cancel_invocation()
    return {"best": min(fares, key=lambda fare: fare["fare"]), "answered": answered}
