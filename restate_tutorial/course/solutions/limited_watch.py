"""Exercise 8.2: a price watch that gives up after a number of checks."""

from __future__ import annotations

from datetime import timedelta

import restate
from restate import ObjectContext, ObjectSharedContext, RunOptions

from restate_tutorial.simulated import fares, mailer

limited_watch = restate.VirtualObject("LimitedWatch")


@limited_watch.handler(name="Start")
async def start(ctx: ObjectContext, watch: dict) -> None:
    ctx.set("watch", watch)
    ctx.set("checks", 0)
    ctx.set("status", "watching")
    next_check(ctx, watch["every_seconds"])


@limited_watch.handler(name="Check")
async def check_fare(ctx: ObjectContext) -> None:
    watch = await ctx.get("watch", type_hint=dict) or {}
    checks = (await ctx.get("checks", type_hint=int) or 0) + 1
    ctx.set("checks", checks)
    fare = await ctx.run_typed("check fare", fares.check, RunOptions(), ctx.key(),
                               f"{ctx.key()}-{checks}")
    if fare < watch["below"]:
        ctx.set("status", "alerted")
        await ctx.run_typed("alert", mailer.notify, RunOptions(), watch["notify"],
                            f"{ctx.key()} costs {fare}", "Below your limit.", f"{ctx.key()}-alert")
        return
    if checks >= watch["max_checks"]:
        # Out of checks: say so once (a journaled step), and schedule nothing more.
        ctx.set("status", "gave up")
        await ctx.run_typed("give up", mailer.notify, RunOptions(), watch["notify"],
                            f"{ctx.key()}: no luck", f"Not below {watch['below']} in {checks} "
                            "checks.", f"{ctx.key()}-gave-up")
        return
    next_check(ctx, watch["every_seconds"])


@limited_watch.handler(name="Status", kind="shared")
async def status(ctx: ObjectSharedContext) -> dict:
    return {"status": await ctx.get("status", type_hint=str) or "idle",
            "checks": await ctx.get("checks", type_hint=int) or 0}


def next_check(ctx: ObjectContext, every: float) -> None:
    """Check again in ``every`` seconds: a call to ourselves, delayed."""
    ctx.object_send(check_fare, key=ctx.key(), arg=None, send_delay=timedelta(seconds=every))
