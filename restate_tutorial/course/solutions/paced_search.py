"""Exercise 9.2: each user starts at most one search a second; others are not held up."""

from __future__ import annotations

import restate
from restate import Context

from restate_tutorial.patterns import fan_out
from restate_tutorial.simulated import quotes

user_search = restate.Service("UserSearch")


@user_search.handler(name="Search")
async def search(ctx: Context, request: dict) -> dict:
    # This user's token first: one search a second (a bucket per user: no one else waits).
    await fan_out.wait_for_token(ctx, f"search-{request['user']}", per_second=1)
    calls = [ctx.service_call(fan_out.quote_with_permit,
                              arg={"airline": airline, "route": request["route"]})
             for airline in quotes.AIRLINES]
    await restate.gather(*calls)
    fares = [await call for call in calls]
    return {"best": min(fares, key=lambda fare: fare["fare"]), "fares": fares}
