"""Small services the runtime tests drive (the tutorial's own live in restate_tutorial)."""

from __future__ import annotations

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
