"""Exercise 3.2: keep location updates that arrive before the registration, apply them at it.

Two streams never promise an order between them: a scanner's event can overtake the
registration. Failing the early event would lose it; keeping it in the object's state, next to
the (future) registration, joins the two whatever the order.
"""

from __future__ import annotations

import restate
from restate import ObjectContext, ObjectSharedContext

EARLY_KEY = "early-locations"

early_bird_tracker = restate.VirtualObject("EarlyBirdTracker")


@early_bird_tracker.handler(name="RegisterPackage")
async def register_early(ctx: ObjectContext, request: dict) -> None:
    early = await ctx.get(EARLY_KEY, type_hint=list) or []  # the updates that came first
    ctx.set("package-info", {"finalDestination": request["finalDestination"], "locations": early})
    ctx.clear(EARLY_KEY)


@early_bird_tracker.handler(name="UpdateLocation")
async def update_early(ctx: ObjectContext, update: dict) -> None:
    info = await ctx.get("package-info", type_hint=dict)
    if info is None:  # not registered yet: keep the update for later
        ctx.set(EARLY_KEY, [*(await ctx.get(EARLY_KEY, type_hint=list) or []), update])
        return
    info["locations"].append(update)
    ctx.set("package-info", info)


@early_bird_tracker.handler(name="getPackageInfo", kind="shared")
async def early_info(ctx: ObjectSharedContext) -> dict | None:
    return await ctx.get("package-info", type_hint=dict)
