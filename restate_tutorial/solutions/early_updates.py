"""Exercise 3.2: keep location updates that arrive before the registration, apply them at it.

Two streams never promise an order between them: a scanner's event can overtake the
registration. Failing the early event would lose it; keeping it in the object's state, next to
the (future) registration, joins the two whatever the order.
"""

from __future__ import annotations

from typing import Any

import restate
from restate import ObjectContext, ObjectSharedContext

STATE_KEY = "package-info"
EARLY_KEY = "early-locations"

early_bird_tracker = restate.VirtualObject("EarlyBirdTracker")


@early_bird_tracker.handler(name="RegisterPackage")
async def register_package(ctx: ObjectContext, request: dict[str, Any]) -> None:
    info = await ctx.get(STATE_KEY, type_hint=dict) or {"locations": []}
    early = await ctx.get(EARLY_KEY, type_hint=list) or []
    ctx.set(STATE_KEY, {"finalDestination": request["finalDestination"],
                        "locations": early + info["locations"]})
    ctx.clear(EARLY_KEY)


@early_bird_tracker.handler(name="UpdateLocation")
async def update_location(ctx: ObjectContext, update: dict[str, Any]) -> None:
    info = await ctx.get(STATE_KEY, type_hint=dict)
    if info is None:  # not registered yet: keep the update for later
        ctx.set(EARLY_KEY, [*(await ctx.get(EARLY_KEY, type_hint=list) or []), update])
        return
    info["locations"].append(update)
    ctx.set(STATE_KEY, info)


@early_bird_tracker.handler(name="getPackageInfo", kind="shared")
async def get_package_info(ctx: ObjectSharedContext) -> dict[str, Any] | None:
    return await ctx.get(STATE_KEY, type_hint=dict)
