"""Clients this project did not write, against the running lab: a librdkafka producer
(confluent-kafka), the official TypeScript ingress client, curl, and the official `restate` and
`restatectl` CLIs — including their bad input. The README's "Using other clients" table is
kept true by these tests."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer, libversion

from restate_tutorial import views
from restate_tutorial.lab import Lab, wait_until
from restate_tutorial.lab.binaries import PROJECT_DIR
from restate_tutorial.lab.cli import restatectl
from restate_tutorial.scenarios import GOOD_BOOKING, SEED_BOOKING
from restate_tutorial.simulated import mailer, social, travel

POSTS, LOCATIONS = "social-media-posts", "package-location-updates"
TS_CLIENT = Path(__file__).with_name("ts_client.cjs")


@pytest.fixture(scope="module")
def subscribed(lab: Lab) -> Lab:
    lab.subscribe(POSTS, "UserFeed", "ProcessPost")
    lab.subscribe(LOCATIONS, "PackageTracker", "UpdateLocation")
    return lab


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


def librdkafka_send(lab: Lab, topic: str, records: list[tuple[str | None, bytes]]) -> None:
    """Send ``key:value`` records as kafka-console-producer would, through librdkafka."""
    producer = Producer({"bootstrap.servers": lab.broker.bootstrap_servers,
                         "message.max.bytes": 2 * 1024 * 1024})
    failures: list[str] = []
    for key, value in records:
        producer.produce(topic, value=value, key=key,
                         on_delivery=lambda error, _: error and failures.append(str(error)))
    assert producer.flush(30) == 0 and not failures, failures


def package_info(lab: Lab, package: str) -> dict[str, Any]:
    return lab.ingress.get("PackageTracker", "getPackageInfo", key=package)


def test_librdkafka_producer_sends_the_original_examples_records(subscribed: Lab) -> None:
    assert tuple(int(p) for p in libversion()[0].split(".")[:2]) >= (2, 2)  # see the README
    one, two, package = unique("userid1"), unique("userid2"), unique("package123")
    for who in (one, two):
        social.moderation.script(who, 1)
    librdkafka_send(subscribed, POSTS, [
        (one, b'{"content": "Hi! This is my first post!", "metadata": "public"}'),
        (two, b'{"content": "Hi! This is my first post!", "metadata": "public"}'),
        (one, b'{"content": "Hi! This is my second post!", "metadata": "public"}')])
    subscribed.ingress.call("PackageTracker", "RegisterPackage",
                            {"finalDestination": "Bridge 6, Amsterdam"}, key=package)
    librdkafka_send(subscribed, LOCATIONS, [
        (package, b'{"timestamp": "2024-10-10 13:00", "location": "Pinetree Road 5, Paris"}'),
        (package, b'{"timestamp": "2024-10-10 14:00", "location": "Mountain Road 155, Brussels"}')])
    wait_until(lambda: len(social.social_media.feed(one)) == 2
               and len(social.social_media.feed(two)) == 1, 60, "the posts in both feeds")
    wait_until(lambda: len(package_info(subscribed, package)["locations"]) == 2, 60,
               "both locations")
    assert [c["content"] for c in social.social_media.ledger.entries("create_post", user_id=one)
            ] == ["Hi! This is my first post!", "Hi! This is my second post!"]


def keyless_failures(lab: Lab) -> int:
    return sum("no key" in row["failure"] for row in views.invocations(
        lab.admin, service="UserFeed", key="", status="failed"))


def test_bad_records_from_librdkafka_fail_alone_and_the_key_moves_on(subscribed: Lab) -> None:
    who = unique("userid1")
    social.moderation.script(who, 1)
    keyless_before = keyless_failures(subscribed)
    huge = json.dumps({"content": "x" * (1024 * 1024), "metadata": "public"}).encode()
    librdkafka_send(subscribed, POSTS, [
        (who, b"{this is not json"), (None, b'{"content": "a"}'), (who, huge),
        (who, b'{"content": "after", "metadata": "public"}')])
    wait_until(lambda: len(social.social_media.feed(who)) == 1, 60, "the good post after the bad")
    subscribed.admin.wait_until_ended(service="UserFeed", key=who, count=3)
    assert [c["content"] for c in social.social_media.ledger.entries("create_post", user_id=who)
            ] == ["after"]
    failures = [row["failure"] for row in views.invocations(subscribed.admin, service="UserFeed",
                                                            key=who, status="failed")]
    assert [f.split(" ", 2)[:2] for f in failures] == [["[400]", "malformed"],
                                                       ["[413]", "malformed"]], failures
    wait_until(lambda: keyless_failures(subscribed) == keyless_before + 1, 30,
               "the keyless record's invocation to fail with 'no key'")


def test_the_official_typescript_client(subscribed: Lab) -> None:
    trip, package, key = unique("trip"), unique("package"), unique("greet")
    drafts = mailer.ledger.count("draft", name="Ada")
    node_path = str(PROJECT_DIR / ".tools" / "node_modules")
    run = subprocess.run(["node", str(TS_CLIENT), subscribed.ingress.url, trip, package, key],
                         env={**os.environ, "NODE_PATH": node_path}, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    steps = json.loads(run.stdout)
    # workflowSubmit() calls "run"; the original example's handler is "Run" (the README's note).
    assert steps["workflowSubmit"]["status"] == 404
    assert "handler 'run' was not found" in steps["workflowSubmit"]["error"]
    # The workaround: send to "Run" by name, then workflowAttach().
    assert steps["sendRun"]["ok"].startswith("inv_")
    assert steps["workflowAttach"]["ok"]["amount"] == 1500
    payment = steps["workflowAttach"]["ok"]["payment"]
    assert travel.payments.ledger.history(payment_id=payment) == ["charge"]
    # A handler without input: the client must send no body (input: serde.empty).
    assert steps["getPackageInfoPlain"]["status"] == 400
    assert steps["getPackageInfo"]["ok"] == {"finalDestination": "Bridge 6, Amsterdam",
                                             "locations": []}
    # An idempotency key: the second send attaches to the first; one greeting drafted.
    assert steps["idempotentSend1"]["ok"] == steps["idempotentSend2"]["ok"]
    assert steps["idempotentCall"]["ok"]["message"] == "Hello Ada!"
    assert mailer.ledger.count("draft", name="Ada") == drafts + 1


@pytest.mark.parametrize(("name", "arguments", "status", "message"), [
    ("wrong content type", ["-H", "content-type: text/plain", "-d", "hello"], 400,
     "Content-type 'text/plain' does not match 'application/json'"),  # Restate's ingress says
    ("empty body", ["-H", "content-type: application/json", "-d", ""], 400,
     "Empty body not allowed"),
    ("not JSON", ["-H", "content-type: application/json", "-d", "{oops"], 400, "malformed"),
])
def test_bad_http_input_from_curl_is_answered_and_books_nothing(
        subscribed: Lab, name: str, arguments: list[str], status: int, message: str) -> None:
    trip = unique("curl")
    reservations = travel.flights.ledger.count("reserve")
    answer = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", "-X", "POST",
                             f"{subscribed.ingress.url}/BookingWorkflow/{trip}/Run", *arguments],
                            capture_output=True, text=True, timeout=30).stdout
    body, code = answer.rsplit("\n", 1)
    assert int(code) == status and message in body, (name, answer)
    assert travel.flights.ledger.count("reserve") == reservations
    # ... and the service still works afterwards.
    ok = subscribed.ingress.call("BookingWorkflow", "Run", GOOD_BOOKING, key=unique("after"))
    assert ok["amount"] == 1500


def test_the_restate_cli_and_restatectl(subscribed: Lab) -> None:
    trip, package = unique("declined"), unique("package")
    declined = subscribed.ingress.send("BookingWorkflow", "Run", SEED_BOOKING, key=trip)
    subscribed.admin.wait_for_status(declined, "completed")
    subscribed.ingress.call("PackageTracker", "RegisterPackage",
                            {"finalDestination": "Bridge 6, Amsterdam"}, key=package)
    services = subscribed.cli("services", "list")
    assert all(s in services for s in ("BookingWorkflow", "UserFeed", "PackageTracker"))
    assert subscribed.host.url.removeprefix("http://") in subscribed.cli("deployments", "list")
    assert declined in subscribed.cli("invocations", "list", "--all")
    described = subscribed.cli("invocations", "describe", declined)
    assert described.count(".Cancel") + described.count("/Cancel") >= 2, described  # compensations
    assert "Bridge 6, Amsterdam" in subscribed.cli("kv", "get", "PackageTracker", package)
    status = restatectl([subscribed.server.node_url], "status")  # type: ignore[union-attr]
    assert "NODE-ID" in status and "N1" in status, status
