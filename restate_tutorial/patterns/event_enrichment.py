"""Event enrichment: a package's digital twin, fed over HTTP and from Kafka, queryable any time.

    RegisterPackage   (HTTP)                  ─┐
    UpdateLocation    (Kafka record,           ├─▶ PackageTracker/<package id>
                       key = package id)       │     state "package-info":
    getPackageInfo    (HTTP GET, shared)      ─┘     {"finalDestination", "locations": [...]}

Each package is a virtual object: its state lives in Restate, next to the journal, and every
event for one package is applied in order, one at a time. Joining the registration (an RPC)
with the stream of location events (Kafka) is a streaming join done by plain handler code.
"""

from __future__ import annotations

from typing import Any

import restate
from restate import ObjectContext, ObjectSharedContext, TerminalError

from .payloads import JSON_INPUT, clip, fields

log = restate.getLogger("restate_tutorial.patterns.event_enrichment")

package_tracker = restate.VirtualObject("PackageTracker")

STATE_KEY = "package-info"


@package_tracker.handler(name="RegisterPackage", input_serde=JSON_INPUT)
async def register_package(ctx: ObjectContext, request: Any) -> None:
    registration = fields(request, "package registration", finalDestination=str)
    # Keep the locations seen so far if the package is registered again.
    known = await ctx.get(STATE_KEY, type_hint=dict) or {"locations": []}
    ctx.set(STATE_KEY, {"finalDestination": registration["finalDestination"],
                        "locations": known["locations"]})
    log.info(f"Package {clip(ctx.key())} registered for {clip(registration['finalDestination'])}")


@package_tracker.handler(name="UpdateLocation", input_serde=JSON_INPUT)
async def update_location(ctx: ObjectContext, event: Any) -> None:
    try:
        if not ctx.key():  # a Kafka record without a key lands on the empty key
            raise TerminalError("malformed location update: the record has no key (package id)",
                                400)
        update = fields(event, "location update", location=str, timestamp=str)
        info = await ctx.get(STATE_KEY, type_hint=dict)
        if info is None:
            # Terminal: retrying cannot register the package; a retry loop would block the key.
            raise TerminalError(f"package not found: {clip(ctx.key())} was never registered",
                                404)
    except TerminalError as rejected:  # terminal: the key moves on; say so where people look
        log.warning(f"Rejected a location update for package {clip(ctx.key())!r} "
                    f"(PackageTracker/UpdateLocation, e.g. a record on package-location-updates): "
                    f"{rejected}")
        raise
    info["locations"].append(update)
    ctx.set(STATE_KEY, info)
    log.info(f"Package {clip(ctx.key())} is at {clip(update['location'])} "
             f"({clip(update['timestamp'])})")


@package_tracker.handler(name="getPackageInfo", kind="shared")
async def get_package_info(ctx: ObjectSharedContext) -> dict[str, Any]:
    info = await ctx.get(STATE_KEY, type_hint=dict)
    if info is None:
        raise TerminalError(f"package not found: {clip(ctx.key())} was never registered", 404)
    return info
