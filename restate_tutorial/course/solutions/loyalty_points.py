"""Exercise 1.1: award loyalty points once, however often the step runs."""

from __future__ import annotations

import restate
from restate import Context, RunOptions

from restate_tutorial.patterns.keys import unique_key
from restate_tutorial.simulated import travel

loyalty_bonus = restate.Service("LoyaltyBonus")


@loyalty_bonus.handler(name="Award")
async def award(ctx: Context, request: dict) -> int:
    # The request id is made in a journaled step of its own: a retry of the next step reuses it.
    request_id = await unique_key(ctx, "request id")
    return await ctx.run_typed("add points", travel.loyalty.add_points, RunOptions(),
                               request["member"], request["points"], request_id)
