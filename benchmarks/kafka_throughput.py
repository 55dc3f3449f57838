"""Kafka → UserFeed/ProcessPost throughput against the same handler driven over HTTP ingress.

10 keys (users), moderation done at the first check (no sleeps), so each event is: create post,
one moderation check, feed update — three journaled steps. Both paths start a batch of events
and time until the last one is in a feed. Also: a fresh subscription → its first event handled.
Prints a table and a JSON line; the ratio is measured within one run.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from restate_tutorial import event_transactions  # noqa: E402
from restate_tutorial.lab import Lab, wait_until  # noqa: E402
from restate_tutorial.simulated import social  # noqa: E402

EVENTS = 300
KEYS = 10


def batch(tag: str) -> list[tuple[str, dict[str, str]]]:
    users = [f"{tag}-user{i}" for i in range(KEYS)]
    for user in users:
        social.moderation.script(user, 1)
    return [(users[n % KEYS], {"content": f"post {n}", "metadata": "bench"})
            for n in range(EVENTS)]


def send_in_order(lab: Lab, records: list[tuple[str, dict[str, str]]]) -> None:
    for user, post in records:
        lab.ingress.send("UserFeed", "ProcessPost", post, key=user)


def until_all_in_feeds(started: float) -> float:
    wait_until(lambda: social.social_media.ledger.count("update_feed") >= EVENTS, 300,
               f"{EVENTS} feed updates", interval=0.01)
    return EVENTS / (time.perf_counter() - started)


def main() -> None:
    with Lab([event_transactions.user_feed]) as lab:
        topic = f"bench-posts-{uuid.uuid4().hex[:6]}"
        lab.broker.create_topics(topic)
        lab.broker.produce(topic, "warm-up", {"content": "hello", "metadata": "bench"})
        social.moderation.script("warm-up", 1)
        started = time.perf_counter()
        lab.subscribe(topic, "UserFeed", "ProcessPost")
        wait_until(lambda: social.social_media.ledger.count("update_feed") == 1, 120,
                   "the first event", interval=0.01)
        first_event = time.perf_counter() - started

        social.reset()
        records = batch("kafka")
        started = time.perf_counter()
        lab.broker.produce_many(topic, records)
        kafka_rate = until_all_in_feeds(started)

        social.reset()
        records = batch("http")
        started = time.perf_counter()
        with ThreadPoolExecutor(KEYS) as senders:  # one sender per key keeps per-key order
            for user in {user for user, _ in records}:
                senders.submit(send_in_order, lab, [(u, p) for u, p in records if u == user])
        http_rate = until_all_in_feeds(started)

    print(f"UserFeed/ProcessPost, {EVENTS} events over {KEYS} keys, moderation immediate")
    print(f"  via Kafka subscription     {kafka_rate:8.1f} events/s")
    print(f"  via HTTP ingress (send ×10){http_rate:8.1f} events/s")
    print(f"  ratio Kafka / HTTP         {kafka_rate / http_rate:8.2f}")
    print(f"  subscription → first event {first_event:8.2f} s")
    print(json.dumps({"benchmark": "kafka_throughput", "events": EVENTS, "keys": KEYS,
                      "kafka_events_per_s": round(kafka_rate, 1),
                      "http_events_per_s": round(http_rate, 1),
                      "kafka_to_http_ratio": round(kafka_rate / http_rate, 2),
                      "subscription_to_first_event_s": round(first_event, 2)}))


if __name__ == "__main__":
    main()
