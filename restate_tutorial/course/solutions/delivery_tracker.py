"""Exercise 3.1: mark a package delivered once it reaches its final destination."""

from __future__ import annotations

import restate
from restate import ObjectContext, ObjectSharedContext

delivery_tracker = restate.VirtualObject("DeliveryTracker")


@delivery_tracker.handler(name="RegisterPackage")
async def register_delivery(ctx: ObjectContext, request: dict) -> None:
    # Not delivered yet: the flag is there from the registration on.
    ctx.set("package-info", {"finalDestination": request["finalDestination"], "locations": [],
                             "delivered": False})


@delivery_tracker.handler(name="UpdateLocation")
async def update_delivery(ctx: ObjectContext, update: dict) -> None:
    info = await ctx.get("package-info", type_hint=dict)
    if info is None:
        raise restate.TerminalError(f"package not found: {ctx.key()}", 404)
    info["locations"].append(update)
    # Delivered once the package is where it was going (and it stays delivered).
    info["delivered"] = info.get("delivered") or update["location"] == info["finalDestination"]
    ctx.set("package-info", info)


@delivery_tracker.handler(name="getPackageInfo", kind="shared")
async def delivery_info(ctx: ObjectSharedContext) -> dict | None:
    return await ctx.get("package-info", type_hint=dict)
