"""Exercise 3.1: mark a package delivered once it reaches its final destination."""

from __future__ import annotations

from typing import Any

import restate
from restate import ObjectContext, ObjectSharedContext

STATE_KEY = "package-info"

delivery_tracker = restate.VirtualObject("DeliveryTracker")


@delivery_tracker.handler(name="RegisterPackage")
async def register_package(ctx: ObjectContext, request: dict[str, Any]) -> None:
    ctx.set(STATE_KEY, {"finalDestination": request["finalDestination"], "locations": [],
                        "delivered": False})


@delivery_tracker.handler(name="UpdateLocation")
async def update_location(ctx: ObjectContext, update: dict[str, Any]) -> None:
    info = await ctx.get(STATE_KEY, type_hint=dict)
    if info is None:
        raise restate.TerminalError(f"package not found: {ctx.key()}", 404)
    info["locations"].append(update)
    # Delivered once the package is where it was going (and it stays delivered).
    info["delivered"] = info.get("delivered") or update["location"] == info["finalDestination"]
    ctx.set(STATE_KEY, info)


@delivery_tracker.handler(name="getPackageInfo", kind="shared")
async def get_package_info(ctx: ObjectSharedContext) -> dict[str, Any] | None:
    return await ctx.get(STATE_KEY, type_hint=dict)
