"""Exercise 2.1: back off — wait twice as long before each new moderation check."""

from __future__ import annotations

import restate
from restate import ObjectContext, RunOptions

from restate_tutorial.patterns import event_transactions
from restate_tutorial.patterns.keys import unique_key
from restate_tutorial.simulated.social import moderation, social_media

patient_user_feed = restate.VirtualObject("PatientUserFeed")


@patient_user_feed.handler(name="ProcessPost")
async def patient_process_post(ctx: ObjectContext, post: dict) -> None:
    user_id = ctx.key()
    request_id = await unique_key(ctx, "request id")
    post_id = await ctx.run_typed("create post", social_media.create_post, RunOptions(),
                                  user_id, post, request_id)
    interval = event_transactions.poll_interval
    while await ctx.run_typed("check moderation", moderation.status, RunOptions(),
                              user_id, post_id) == "PENDING":
        await ctx.sleep(interval, name="moderation backoff")
        interval *= 2  # 1×, 2×, 4×… the interval: a busy moderation service gets some air
    await ctx.run_typed("update feed", social_media.update_feed, RunOptions(), user_id, post_id)
