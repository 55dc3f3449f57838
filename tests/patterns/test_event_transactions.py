"""UserFeed fed by Kafka: per-key order, keys in parallel, durable timers, crash recovery."""

from __future__ import annotations

import uuid

import pytest

from restate_tutorial import views
from restate_tutorial.lab import Lab, wait_until
from restate_tutorial.logbook import logbook
from restate_tutorial.patterns import event_transactions
from restate_tutorial.simulated import social

TOPIC = "social-media-posts"
posts, moderation = social.social_media, social.moderation


@pytest.fixture(scope="module")
def feed(lab: Lab) -> Lab:
    lab.subscribe(TOPIC, "UserFeed", "ProcessPost")
    return lab


pytestmark = pytest.mark.usefixtures("fresh_ledgers")


def user(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


def post(content: str) -> dict[str, str]:
    return {"content": content, "metadata": "public"}


def wait_for_feed(user_id: str, count: int) -> list[str]:
    wait_until(lambda: len(posts.feed(user_id)) >= count, 60, f"{count} posts in {user_id}'s feed")
    return posts.feed(user_id)


def test_seed_posts_run_in_order_per_user_and_in_parallel_across_users(feed: Lab) -> None:
    one, two = user("userid1"), user("userid2")
    moderation.script(one, 3)
    moderation.script(two, 1)
    since = logbook.mark()
    feed.broker.produce(TOPIC, one, post("Hi! This is my first post!"))
    feed.broker.produce(TOPIC, two, post("Hi! This is my first post!"))
    feed.broker.produce(TOPIC, one, post("Hi! This is my second post!"))
    wait_for_feed(one, 2)
    wait_for_feed(two, 1)

    created = posts.ledger.entries("create_post", user_id=one)
    assert [p["content"] for p in created] == ["Hi! This is my first post!",
                                              "Hi! This is my second post!"]
    assert posts.feed(one) == [p["post_id"] for p in created]  # feed order = event order
    assert posts.ledger.count("create_post") == 3 and posts.ledger.count("update_feed") == 3

    chart = views.timeline(feed.admin, "UserFeed")
    first, second = chart.of(one)
    (other,) = chart.of(two)
    assert other.completed < first.completed  # userid2 done while userid1 still waits
    assert second.started >= first.completed  # one user's events strictly one after another
    assert len(first.sleeps) == 2 and len(other.sleeps) == 0
    assert chart._repr_png_().startswith(b"\x89PNG") and one in str(chart)

    # The seed's log lines, in order, for userid1's first post.
    post_id = created[0]["post_id"]
    seconds = event_transactions.poll_interval.total_seconds()
    pending = (f"Content moderation for post {post_id} is still pending... Will check again "
               f"in {seconds:g} seconds")
    lines = [line.split(" INFO ", 1)[1] for line in logbook.lines(since, containing=post_id)]
    assert lines == [
        f"Created post {post_id} for user {one} with content: Hi! This is my first post!",
        pending, pending, f"Content moderation for post {post_id} is done",
        f"Updating the user feed for user {one} with post {post_id}"]

    journal = views.journal(feed.admin, first.invocation_id)
    assert journal.column("entry_type").count("Command: Sleep") == 2


@pytest.mark.parametrize("crash", [
    "service host",
    pytest.param("restate-server", marks=pytest.mark.lab_restate),
])
def test_crash_during_moderation_wait_resumes_with_the_same_post(feed: Lab, crash: str) -> None:
    who = user(f"crash-{crash.split()[0]}")
    moderation.script(who, 3)
    feed.broker.produce(TOPIC, who, post(f"survive a {crash} crash"))
    invocation = feed.admin.wait_for_invocation("UserFeed", who)
    feed.admin.wait_for_entry(invocation, "Command: Sleep")
    at_crash = (posts.ledger.history(user_id=who), moderation.ledger.history(user_id=who))
    if crash == "service host":
        feed.host.stop()
        assert not feed.host.running
        feed.host.start()
    else:
        feed.server.restart()
    wait_for_feed(who, 1)
    # Nothing journaled before the crash ran again — not even as a deduplicated repeat: the
    # histories are those at the crash, followed by the steps that came after it.
    assert at_crash == (["create_post"], ["check"])
    assert posts.ledger.history(user_id=who) == ["create_post", "update_feed"]
    assert [e["status"] for e in moderation.ledger.entries(user_id=who)] == [
        "PENDING", "PENDING", "DONE"]
    assert posts.feed(who) == [posts.ledger.entries("create_post", user_id=who)[0]["post_id"]]


def test_invalid_json_fails_terminally_and_the_key_moves_on(feed: Lab) -> None:
    who = user("poison")
    moderation.script(who, 1)
    feed.broker.produce(TOPIC, who, b"{this is not json")
    feed.broker.produce(TOPIC, who, {"content": "no metadata"})
    feed.broker.produce(TOPIC, who, post("after the poison"))
    wait_for_feed(who, 1)

    feed.admin.wait_until_ended(service="UserFeed", key=who, count=3)
    rows = views.invocations(feed.admin, service="UserFeed", key=who)
    failures = [r["failure"] for r in rows if r["failure"]]
    assert len(failures) == 2
    for row in rows:  # each poison record failed once, terminally: completed, never retried
        assert row["status"] == ("failed" if row["failure"] else "completed"), row
        assert not row.get("last_failure"), row
    assert any("malformed social media post: the body is not valid JSON" in f for f in failures)
    assert any("'metadata'" in f for f in failures)
    assert [p["content"] for p in posts.ledger.entries("create_post", user_id=who)] == [
        "after the poison"]


def test_rejected_records_are_one_warning_each_and_user_text_is_clipped(feed: Lab) -> None:
    who = user("loud")
    moderation.script(who, 1)
    since = logbook.mark()
    feed.broker.produce(TOPIC, who, post("x" * 2_001))  # over the limit: rejected
    feed.broker.produce(TOPIC, who, post("y" * 2_000))  # at the limit: a post, clipped in logs
    wait_for_feed(who, 1)
    warnings = logbook.lines(since, containing=f"WARNING Rejected a post for user '{who}'")
    assert len(warnings) == 1 and "'content': 2,001 characters" in warnings[0]
    created = logbook.lines(since, containing="Created post")
    assert [line for line in created if who in line][0].endswith("y" * 79 + "…")


def test_transient_feed_failure_is_retried_into_one_update(feed: Lab) -> None:
    who = user("flaky")
    moderation.script(who, 1)
    posts.failures.fail_next("update_feed", 2)
    feed.broker.produce(TOPIC, who, post("retry me"))
    wait_for_feed(who, 1)
    assert posts.failures.fired("update_feed") == 2
    assert posts.ledger.count("update_feed", user_id=who) == 1
    assert posts.ledger.count("create_post", user_id=who) == 1


def test_a_duplicate_subscription_processes_every_event_twice(feed: Lab) -> None:
    topic = f"dup-{uuid.uuid4().hex[:6]}"
    feed.broker.create_topics(topic)
    first = feed.admin.subscribe(topic, "UserFeed", "ProcessPost")
    second = feed.admin.subscribe(topic, "UserFeed", "ProcessPost", allow_duplicate=True)
    assert first["id"] != second["id"]
    try:
        who = user("twice")
        moderation.script(who, 1)
        feed.broker.produce(topic, who, post("once, I hope"))
        wait_for_feed(who, 2)
        assert posts.ledger.count("create_post", user_id=who) == 2
    finally:
        feed.admin.unsubscribe(second["id"])
        feed.admin.unsubscribe(first["id"])
    assert not [s for s in feed.admin.subscriptions() if s["source"].endswith(topic)]
