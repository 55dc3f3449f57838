"""Exercise 8.1: snooze a reminder — the pending one cancelled, a new one scheduled."""

from __future__ import annotations

from datetime import timedelta

import restate
from restate import ObjectContext, RunOptions, TerminalError

from restate_tutorial.simulated import mailer

reminder = restate.VirtualObject("Reminder")


@reminder.handler(name="Set")
async def set_reminder(ctx: ObjectContext, request: dict) -> str:
    return await schedule(ctx, request["in_seconds"])


@reminder.handler(name="Snooze")
async def snooze(ctx: ObjectContext, request: dict) -> str:
    pending = await ctx.get("pending", type_hint=str)
    if pending is None:
        raise TerminalError(f"no reminder is pending for {ctx.key()}", 404)
    # The pending reminder never runs; a new one, later, takes its place.
    ctx.cancel_invocation(pending)
    return await schedule(ctx, request["seconds"])


@reminder.handler(name="Remind")
async def remind(ctx: ObjectContext) -> None:
    ctx.clear("pending")
    await ctx.run_typed("remind", mailer.notify, RunOptions(), ctx.key(), "Reminder",
                        "Time to check in.", str(ctx.request().id))


async def schedule(ctx: ObjectContext, delay: float) -> str:
    """Send Remind to ourselves in ``delay`` seconds; keep its id (to cancel it)."""
    handle = ctx.object_send(remind, key=ctx.key(), arg=None, send_delay=timedelta(seconds=delay))
    pending = await handle.invocation_id()
    ctx.set("pending", pending)
    return pending
