"""The fault matrix: each case breaks something on purpose and checks, on the ledgers of the
simulated systems and on Restate's records, that nothing was lost and nothing happened twice.

Each docstring says what a user would see. The README's "What survives what" table is checked
against this file (see the last test).
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from restate_tutorial import views
from restate_tutorial.lab import IngressError, Lab, wait_until
from restate_tutorial.scenarios import GOOD_CARD, booking
from restate_tutorial.simulated import mailer, social, travel

from ..ledgers import one_saga, saga_history
from ..services import call_as_a_handler

pytestmark = pytest.mark.usefixtures("fresh_ledgers")


# Steps whose answer is lost after they took effect: (system, call, card that reaches it).
LOST_ANSWERS = {
    "flight reserved": (travel.flights, "reserve", GOOD_CARD),
    "car reserved": (travel.car_rentals, "reserve", GOOD_CARD),
    "payment charged": (travel.payments, "charge", GOOD_CARD),
    "flight confirmed": (travel.flights, "confirm", GOOD_CARD),
    "car confirmed": (travel.car_rentals, "confirm", GOOD_CARD),
    "refund": (travel.payments, "refund", travel.DECLINED_TEST_CARD),
    "car cancelled": (travel.car_rentals, "cancel", travel.DECLINED_TEST_CARD),
    "flight cancelled": (travel.flights, "cancel", travel.DECLINED_TEST_CARD),
}


@pytest.mark.parametrize("step", list(LOST_ANSWERS))
def test_saga_step_whose_answer_was_lost_takes_effect_once(lab: Lab, step: str) -> None:
    """The system did it, but its answer never came back (as when a crash falls between a
    step's effect and its journal entry), so Restate runs the step again. The user sees the
    booking end as usual; the system saw the call twice and did it once."""
    api, call, card = LOST_ANSWERS[step]
    api.failures.lose_answer_next(call)
    declined = card == travel.DECLINED_TEST_CARD
    try:
        lab.ingress.call("BookingWorkflow", "Run", booking(card),
                         key=f"lost-{uuid.uuid4().hex[:8]}")
    except IngressError as error:
        assert declined and error.status == 402, error
    else:
        assert not declined, "the declined card was charged"

    assert api.failures.fired(call, lost_answer=True) == 1
    # The history of one booking, with exactly one repeat: the lost step's, right after it.
    expected = one_saga(declined)
    steps = expected[api.ledger.system]
    done = next(i for i, s in enumerate(steps) if s.startswith(call))
    steps.insert(done + 1, REPEATS[steps[done]])
    assert saga_history() == expected


# How each system records the repeat of a call that had taken effect.
REPEATS = {"reserve": "reserve (repeated)", "confirm": "confirm (repeated)",
           "charge": "charge (repeated)", "cancel [cancelled]": "cancel [already cancelled]",
           "refund [nothing was charged]": "refund [nothing was charged]"}


@pytest.mark.lab_restate
def test_kafka_record_redelivered_after_a_crash_is_processed_once(lab: Lab) -> None:
    """A record Restate read just before it was SIGKILLed may be read again from Kafka after
    the restart; the user sees one post and one feed update, not two (Restate deduplicates by
    partition offset)."""
    lab.subscribe("social-media-posts", "UserFeed", "ProcessPost")
    who = f"redelivery-{uuid.uuid4().hex[:6]}"
    social.moderation.script(who, 1)
    social.social_media.failures.fail_next("create_post", 2)  # holds it a moment after the read
    lab.broker.produce("social-media-posts", who, {"content": "once", "metadata": "m"})
    lab.admin.wait_for_invocation("UserFeed", who)  # the record was read
    lab.server.restart()  # right after Restate read the record
    # A redelivered copy would sit in Kafka before this marker, so once the marker is in the
    # feed, every copy of the first record has been processed too.
    lab.broker.produce("social-media-posts", who, {"content": "marker", "metadata": "m"})
    wait_until(lambda: len(social.social_media.feed(who)) == 2, 60, "both records in the feed")
    lab.admin.wait_until_ended(service="UserFeed", key=who, count=2)
    rows = views.invocations(lab.admin, service="UserFeed", key=who)
    assert [r["status"] for r in rows] == ["completed", "completed"]
    created = social.social_media.ledger.entries("create_post", user_id=who)
    assert [p["content"] for p in created] == ["once", "marker"]
    assert social.social_media.ledger.count("update_feed", user_id=who) == 2


def test_embedded_broker_crash_loses_only_unconsumed_records(lab: Lab) -> None:
    """The embedded broker keeps everything in memory. After it crashes, the user sees events
    flow again once `lab.restart_broker()` has recreated the topics and subscriptions; what
    Restate had consumed (invocations, state) is kept and not processed again. Records that
    were still waiting in the dead broker are lost (a real Kafka keeps them on disk)."""
    lab.subscribe("social-media-posts", "UserFeed", "ProcessPost")
    before, after = (f"{name}-{uuid.uuid4().hex[:6]}" for name in ("before", "after"))
    for who in (before, after):
        social.moderation.script(who, 1)
    lab.broker.produce("social-media-posts", before, {"content": "consumed", "metadata": "m"})
    wait_until(lambda: len(social.social_media.feed(before)) == 1, 60, "the first record")
    lab.restart_broker()
    lab.broker.produce("social-media-posts", after, {"content": "new", "metadata": "m"})
    wait_until(lambda: len(social.social_media.feed(after)) == 1, 60, "a record after")
    assert social.social_media.ledger.count("create_post", user_id=before) == 1
    assert len(views.invocations(lab.admin, service="UserFeed", key=before)) == 1
    subscriptions = [s for s in lab.admin.subscriptions()
                     if s["source"] == "kafka://my-cluster/social-media-posts"]
    assert len(subscriptions) == 1


def test_embedded_broker_crash_loses_records_waiting_in_it(lab: Lab) -> None:
    """The other half of the row above: a record still waiting in the broker when it crashes
    (here: on a topic Restate does not read yet) is gone; a record sent after it is processed."""
    topic, waiting, after = (f"{name}-{uuid.uuid4().hex[:6]}"
                             for name in ("waiting-posts", "waiting", "after"))
    for who in (waiting, after):
        social.moderation.script(who, 1)
    lab.broker.create_topics(topic)
    lab.broker.produce(topic, waiting, {"content": "waiting", "metadata": "m"})
    lab.restart_broker()
    subscription = lab.subscribe(topic, "UserFeed", "ProcessPost")  # reads from the start
    try:
        lab.broker.produce(topic, after, {"content": "after", "metadata": "m"})
        wait_until(lambda: len(social.social_media.feed(after)) == 1, 60, "the record after")
        assert social.social_media.ledger.count(user_id=waiting) == 0
        assert views.invocations(lab.admin, service="UserFeed", key=waiting).rows == []
    finally:
        lab.admin.unsubscribe(subscription["id"])


@pytest.mark.parametrize("topic, service, handler", [
    ("social-media-posts", "UserFeed", "ProcessPost"),
    ("package-location-updates", "PackageTracker", "UpdateLocation"),
])
def test_kafka_record_without_a_key_fails_terminally(lab: Lab, topic: str, service: str,
                                                      handler: str) -> None:
    """A record with no key has no user/package to go to: that one invocation fails with
    "the record has no key", is not retried, and the topic keeps flowing."""
    lab.subscribe(topic, service, handler)
    marker, after = uuid.uuid4().hex, f"after-{uuid.uuid4().hex[:6]}"
    social.moderation.script(after, 1)
    lab.broker.produce(topic, None, {"content": marker, "metadata": "m", "location": marker,
                                     "timestamp": "t"})
    lab.broker.produce(topic, after, {"content": "keyed", "metadata": "m", "location": "here",
                                      "timestamp": "t"})

    def keyless() -> list[dict[str, Any]]:
        return [r for r in views.invocations(lab.admin, service=service, key="", handler=handler)
                if "has no key" in (r.get("completion_failure") or "")]

    # Ended, successfully or not (a package may be unknown).
    lab.admin.wait_until_ended(service=service, key=after, timeout=60)
    wait_until(lambda: bool(keyless()), 60, "the keyless record's invocation")
    failed = keyless()[-1]
    assert failed["status"] == "failed"  # finished, not retrying
    assert "the record has no key" in failed["completion_failure"]  # a terminal failure
    assert not failed.get("last_failure"), failed  # never failed with a retryable error
    assert social.social_media.ledger.count(content=marker) == 0


EDGE_HANDLERS = [  # the public ones, and the saga's private ones
    ("Greeter", None, "greet"),
    ("Flights", None, "Reserve"), ("Flights", None, "Confirm"), ("Flights", None, "Cancel"),
    ("CarRentals", None, "Reserve"), ("CarRentals", None, "Confirm"),
    ("CarRentals", None, "Cancel"),
    ("BookingWorkflow", "fault-malformed", "Run"),
    ("UserFeed", "someone", "ProcessPost"),
    ("PackageTracker", "pkg-malformed", "RegisterPackage"),
    ("PackageTracker", "pkg-malformed", "UpdateLocation"),
]


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b"42", b"null"])
@pytest.mark.parametrize("service, key, handler", EDGE_HANDLERS)
def test_malformed_http_body_is_a_400_with_no_side_effect(lab: Lab, service: str,
                                                          key: str | None, handler: str,
                                                          body: bytes) -> None:
    """The caller gets HTTP 400 and a message starting "malformed …" that names what is
    wrong; nothing is booked, posted or sent, and Restate does not retry it."""
    if service == "BookingWorkflow":
        key = f"fault-malformed-{uuid.uuid4().hex[:8]}"  # a workflow runs once per key
    drafts = mailer.ledger.count()
    with pytest.raises(IngressError) as rejected:
        if service in ("Flights", "CarRentals"):  # private: from another handler
            call_as_a_handler(lab, service, handler, raw=body.decode())
        else:
            lab.ingress.call(service, handler, body, key=key)
    assert rejected.value.status == 400, rejected.value
    assert rejected.value.message.startswith("malformed "), rejected.value.message
    assert mailer.ledger.count() == drafts
    assert all(api.ledger.count() == 0 for api in (travel.flights, travel.car_rentals,
                                                    travel.payments, social.social_media))


def test_same_request_twice_with_an_idempotency_key_runs_once(lab: Lab) -> None:
    """Sending the same request again with the same `idempotency-key` header returns the first
    answer; the handler's side effects happen once."""
    name, key = f"idem-{uuid.uuid4().hex[:6]}", str(uuid.uuid4())
    request = {"name": name, "delay_seconds": 0}
    first = lab.ingress.call("Greeter", "greet", request, idempotency_key=key)
    second = lab.ingress.call("Greeter", "greet", request, idempotency_key=key)
    assert first == second
    assert mailer.ledger.count("draft", name=name) == 1


def test_same_workflow_key_twice_is_refused(lab: Lab) -> None:
    """A workflow runs once per key: a second `Run` for a trip id that already ran answers 409
    "already invoked" and books nothing."""
    trip = f"trip-{uuid.uuid4().hex[:8]}"
    lab.ingress.call("BookingWorkflow", "Run", booking(GOOD_CARD), key=trip)
    with pytest.raises(IngressError) as again:
        lab.ingress.call("BookingWorkflow", "Run", booking(GOOD_CARD), key=trip)
    assert again.value.status == 409
    assert "the workflow method was already invoked" in again.value.message, again.value
    assert saga_history() == one_saga(declined=False)


def test_readme_survival_table_matches_the_fault_matrix() -> None:
    """Every case here is in the README's "What survives what" table, and every test the
    table names exists."""
    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text()
    section = readme.split("## What survives what", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", section))
    assert named, "no tests named in the table"
    for path, name in named:
        assert re.search(rf"^def {name}\(", (root / path).read_text(), re.M), (path, name)
    here = set(re.findall(r"^def (test_\w+)\(", Path(__file__).read_text(), re.M))
    here.discard("test_readme_survival_table_matches_the_fault_matrix")
    missing = here - {name for path, name in named if path == "tests/system/test_fault_matrix.py"}
    assert not missing, f"fault-matrix cases missing from the README table: {missing}"
