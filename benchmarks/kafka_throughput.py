"""Kafka → UserFeed/ProcessPost throughput against the same handler driven over HTTP ingress.

10 and 100 keys (users); moderation is done at the first check (no sleeps), so each event is
three journaled steps: create post, one moderation check, feed update. Both paths start a
batch of events and time until the last one is in a feed. The anchor: the same batch through
Kafka to a handler that does nothing (no journaled step) — what Kafka → Restate → a handler
costs by itself. Also: a fresh subscription → its first event handled. Prints a table and a
JSON line; ratios are measured within one run.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import restate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import report, sized  # noqa: E402
from restate_tutorial.lab import Lab, wait_until  # noqa: E402
from restate_tutorial.patterns import event_transactions  # noqa: E402
from restate_tutorial.simulated import social  # noqa: E402

EVENTS = sized(300, 20)
KEYS = sized((10, 100), (10,))

no_op = restate.VirtualObject("NoOpFeed")
taken: set[tuple[str, str]] = set()


@no_op.handler(name="Take")
async def take(ctx: restate.ObjectContext, post: dict[str, str]) -> None:
    taken.add((ctx.key(), post["content"]))  # nothing journaled


def batch(tag: str, keys: int) -> list[tuple[str, dict[str, str]]]:
    users = [f"{tag}-user{i}" for i in range(keys)]
    for user in users:
        social.moderation.script(user, 1)
    return [(users[n % keys], {"content": f"post {n}", "metadata": "bench"})
            for n in range(EVENTS)]


def send_in_order(lab: Lab, records: list[tuple[str, dict[str, str]]]) -> None:
    for user, post in records:
        lab.ingress.send("UserFeed", "ProcessPost", post, key=user)


def until_all_in_feeds(started: float) -> float:
    wait_until(lambda: social.social_media.ledger.count("update_feed") >= EVENTS, 300,
               f"{EVENTS} feed updates", interval=0.01, slowest=0.01)
    return EVENTS / (time.perf_counter() - started)


def kafka_rate(lab: Lab, topic: str, keys: int) -> float:
    """Events/s of a batch produced to ``topic`` (already subscribed) and processed."""
    social.reset()
    started = time.perf_counter()
    lab.broker.produce_many(topic, batch(f"kafka{keys}-{uuid.uuid4().hex[:4]}", keys))
    return until_all_in_feeds(started)


def http_rate(lab: Lab, keys: int) -> float:
    """Events/s of the same batch sent through the HTTP ingress (one sender per key)."""
    social.reset()
    records = batch(f"http{keys}-{uuid.uuid4().hex[:4]}", keys)
    started = time.perf_counter()
    with ThreadPoolExecutor(10) as senders:  # one sender per key keeps per-key order
        for user in {user for user, _ in records}:
            senders.submit(send_in_order, lab, [r for r in records if r[0] == user])
    return until_all_in_feeds(started)


def subscribed_topic(lab: Lab, sink: str = "UserFeed/ProcessPost",
                     handled: Callable[[str], bool] = lambda user: bool(
                         social.social_media.feed(user))) -> tuple[str, float]:
    """A fresh topic subscribed to ``sink``; and subscription → first event handled (s)."""
    topic, user = f"bench-posts-{uuid.uuid4().hex[:6]}", f"warm-up-{uuid.uuid4().hex[:6]}"
    lab.broker.create_topics(topic)
    social.moderation.script(user, 1)
    lab.broker.produce(topic, user, {"content": "hello", "metadata": "bench"})
    started = time.perf_counter()
    lab.subscribe(topic, *sink.split("/"))
    wait_until(lambda: handled(user), 120, "the first event", interval=0.01,
               slowest=0.01)
    return topic, time.perf_counter() - started


def no_op_rate(lab: Lab, topic: str, keys: int) -> float:
    """Events/s of the same batch through Kafka to NoOpFeed/Take (subscribed to ``topic``)."""
    taken.clear()
    records = batch(f"noop{keys}-{uuid.uuid4().hex[:4]}", keys)
    started = time.perf_counter()
    lab.broker.produce_many(topic, records)
    wait_until(lambda: len(taken) >= EVENTS, 300, f"{EVENTS} no-op events", interval=0.01,
               slowest=0.01)
    return EVENTS / (time.perf_counter() - started)


def main() -> None:
    with Lab([event_transactions.user_feed, no_op]) as lab:
        topic, first_event = subscribed_topic(lab)
        no_op_topic, _ = subscribed_topic(lab, "NoOpFeed/Take",
                                          lambda user: any(k == user for k, _ in taken))
        results = {}
        for keys in KEYS:
            kafka, http = kafka_rate(lab, topic, keys), http_rate(lab, keys)
            floor = no_op_rate(lab, no_op_topic, keys)
            results[keys] = {"kafka_events_per_s": round(kafka, 1),
                             "http_events_per_s": round(http, 1),
                             "kafka_no_op_events_per_s": round(floor, 1),
                             "kafka_to_http_ratio": round(kafka / http, 2),
                             "kafka_to_no_op_ratio": round(kafka / floor, 2)}

    print(f"UserFeed/ProcessPost, {EVENTS} events, moderation immediate (events/s)")
    for keys, figures in results.items():
        print(f"  {keys:>3} keys: Kafka {figures['kafka_events_per_s']:7.1f}   HTTP ingress "
              f"{figures['http_events_per_s']:7.1f}   Kafka to a no-op handler "
              f"{figures['kafka_no_op_events_per_s']:7.1f}   Kafka / no-op "
              f"{figures['kafka_to_no_op_ratio']:.2f}")
    print(f"  subscription → first event: {first_event:.2f} s")
    keys = KEYS[0]
    report("kafka_throughput", {"events": EVENTS, "by_keys": results,
                                "subscription_to_first_event_s": round(first_event, 2)},
           {f"ProcessPost via Kafka / no-op handler via Kafka, {keys} keys (×)":
                results[keys]["kafka_to_no_op_ratio"],
            f"ProcessPost via Kafka, {keys} keys (events/s)": results[keys]["kafka_events_per_s"],
            "subscription → first event (s)": first_event})


if __name__ == "__main__":
    main()
