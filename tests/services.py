"""Small services the runtime tests drive (the tutorial's own live in restate_tutorial)."""

from __future__ import annotations

import json
from typing import Any

import restate
from restate import ObjectContext, ObjectSharedContext

inbox = restate.VirtualObject("Inbox")


@inbox.handler()
async def add(ctx: ObjectContext, message: dict) -> int:
    """Append ``message`` to this key's list; returns the new length."""
    messages = await ctx.get("messages", type_hint=list) or []
    messages.append(message)
    ctx.set("messages", messages)
    return len(messages)


@inbox.handler(kind="shared")
async def messages(ctx: ObjectSharedContext) -> list:
    return await ctx.get("messages", type_hint=list) or []


relay = restate.Service("Relay")


@relay.handler()
async def call(ctx: restate.Context, request: dict) -> Any:
    """Call ``request["service"]/["handler"]`` (with ``key``) with ``body``, as another handler
    would — the one way to reach a handler that is private to the ingress."""
    answer = await ctx.generic_call(request["service"], request["handler"],
                                    json.dumps(request["body"]).encode(), key=request.get("key"))
    return json.loads(answer) if answer else None
