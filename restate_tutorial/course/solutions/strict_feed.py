"""Exercise 2.2: give up on moderation after MAX_CHECKS checks and reject the post."""

from __future__ import annotations

import restate
from restate import ObjectContext, RunOptions, TerminalError

from restate_tutorial.patterns import event_transactions
from restate_tutorial.patterns.keys import unique_key
from restate_tutorial.simulated.social import moderation, social_media

MAX_CHECKS = 3

strict_user_feed = restate.VirtualObject("StrictUserFeed")


@strict_user_feed.handler(name="ProcessPost")
async def strict_process_post(ctx: ObjectContext, post: dict) -> None:
    user_id = ctx.key()
    request_id = await unique_key(ctx, "request id")
    post_id = await ctx.run_typed("create post", social_media.create_post, RunOptions(),
                                  user_id, post, request_id)
    checks = 0
    while await ctx.run_typed("check moderation", moderation.status, RunOptions(),
                              user_id, post_id) == "PENDING":
        checks += 1  # a plain variable is enough: a replay counts the same journaled checks
        if checks == MAX_CHECKS:
            # Terminal: no retry will change the outcome, and the feed is never touched.
            raise TerminalError(f"post {post_id} rejected: still not moderated after "
                                f"{MAX_CHECKS} checks", 422)
        await ctx.sleep(event_transactions.poll_interval, name="moderation backoff")
    await ctx.run_typed("update feed", social_media.update_feed, RunOptions(), user_id, post_id)
