"""Transactional event processing: Kafka posts → UserFeed, with durable side effects and timers.

    Kafka topic social-media-posts, record key = user id
      └─▶ UserFeed/<user id>/ProcessPost   (a virtual object: one event per user at a time)
            ├─ run "request id", run "create post"  → post id (journaled: a retry reuses it)
            ├─ loop: run "check moderation"; while PENDING, durable sleep (default 5 s)
            └─ run "update feed"

Events for the same user queue up and run in order; other users' events run in parallel, so
one slow post never holds up another user (no head-of-line blocking on the partition). A crash
of the service or of Restate resumes from the journal: same post id, no second post.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import restate
from restate import ObjectContext, RunOptions, TerminalError

from ..simulated.social import moderation, social_media
from .keys import unique_key
from .payloads import JSON_INPUT, clip, fields

log = restate.getLogger("restate_tutorial.patterns.event_transactions")


def _interval_from_env() -> timedelta:
    return timedelta(seconds=float(os.environ.get("RESTATE_TUTORIAL_POLL_SECONDS", "5")))


#: How long ProcessPost sleeps between moderation checks (the seed's 5 s unless
#: RESTATE_TUTORIAL_POLL_SECONDS says otherwise; tests use a short one).
poll_interval: timedelta = _interval_from_env()

user_feed = restate.VirtualObject("UserFeed")


@user_feed.handler(name="ProcessPost", input_serde=JSON_INPUT)
async def process_post(ctx: ObjectContext, record: Any) -> None:
    user_id = ctx.key()
    try:
        if not user_id:  # a Kafka record without a key lands on the empty key
            raise TerminalError("malformed social media post: the record has no key (user id)",
                                400)
        post = fields(record, "social media post", content=str, metadata=str)
    except TerminalError as rejected:  # terminal: the key moves on; say so where people look
        log.warning(f"Rejected a post for user {clip(user_id)!r} (UserFeed/ProcessPost, e.g. "
                    f"a record on social-media-posts): {rejected}")
        raise

    # Create the post; its id is journaled, so recovery continues with the same post (the
    # journaled request id lets the backend recognise a re-run of the step).
    request_id = await unique_key(ctx, "request id")
    post_id = await ctx.run_typed("create post", social_media.create_post, RunOptions(),
                                  user_id, post, request_id)
    log.info(f"Created post {post_id} for user {clip(user_id)} with content: "
             f"{clip(post['content'])}")

    # Wait for moderation: check in a journaled step, sleep durably in between.
    interval = poll_interval
    while await ctx.run_typed("check moderation", moderation.status, RunOptions(),
                              user_id, post_id) == "PENDING":
        log.info(f"Content moderation for post {post_id} is still pending... "
                 f"Will check again in {interval.total_seconds():g} seconds")
        await ctx.sleep(interval, name="moderation backoff")
    log.info(f"Content moderation for post {post_id} is done")

    # Put the post in the user's feed.
    log.info(f"Updating the user feed for user {clip(user_id)} with post {post_id}")
    await ctx.run_typed("update feed", social_media.update_feed, RunOptions(), user_id, post_id)
