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
    would — the one way to reach a handler that is private to the ingress. ``raw`` (text) is
    sent as it is, instead of ``body`` as JSON."""
    body = request["raw"].encode() if "raw" in request else json.dumps(request["body"]).encode()
    answer = await ctx.generic_call(request["service"], request["handler"], body,
                                    key=request.get("key"))
    return json.loads(answer) if answer else None


def call_as_a_handler(lab: Any, service: str, handler: str, body: Any = None, *,
                      key: str | None = None, raw: str | None = None) -> Any:
    """Call ``service/handler`` through Relay, as another handler would (a private one too);
    ``raw`` is sent as it is, else ``body`` as JSON."""
    sent = {"body": body} if raw is None else {"raw": raw}
    return lab.ingress.call("Relay", "call", {"service": service, "handler": handler,
                                              "key": key, **sent})
