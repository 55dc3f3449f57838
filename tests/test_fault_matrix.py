"""The fault matrix: each case breaks something on purpose and checks, on the ledgers of the
simulated systems and on Restate's records, that nothing was lost and nothing happened twice.

Each docstring says what a user would see. The README's "What survives what" table is checked
against this file (see the last test).
"""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from restate_tutorial import views
from restate_tutorial.__main__ import SEED_BOOKING
from restate_tutorial.lab import IngressError, Lab, wait_until
from restate_tutorial.simulated import mailer, social, travel

GOOD_CARD = "5555555555554444"


pytestmark = pytest.mark.usefixtures("fresh_ledgers")


def booking(card: str = GOOD_CARD) -> dict[str, Any]:
    body = copy.deepcopy(SEED_BOOKING)
    body["payment_info"]["card_number"] = card
    return body


# Where to pull the plug in a saga: (held by failing this call 3 times, card, the journal
# entry that marks the point, how many of them).
SAGA_POINTS = {
    "after the flight is reserved": (travel.car_rentals.failures, "reserve", GOOD_CARD,
                                     "Notification: Call", 1),
    "after the car is reserved, before the charge": (travel.payments.failures, "charge",
                                                     GOOD_CARD, "Notification: Call", 2),
    "after the charge, before the confirmations": (travel.flights.failures, "confirm",
                                                   GOOD_CARD, "Notification: Run", 2),
    "in the middle of the compensations": (travel.car_rentals.failures, "cancel",
                                           travel.DECLINED_TEST_CARD, "Command: Call", 3),
}
CRASHES: dict[str, Callable[[Lab], object]] = {
    "restate-server SIGKILL": lambda lab: lab.server.restart(),
    "service host crash": lambda lab: lab.host.restart(),
}


@pytest.mark.lab_restate
@pytest.mark.parametrize("crash", list(CRASHES))
@pytest.mark.parametrize("point", list(SAGA_POINTS))
def test_saga_crash_at_every_point(lab: Lab, point: str, crash: str) -> None:
    """The user sees the booking end exactly as without the crash (a result, or the declined
    payment's 402), a little later; each reservation, charge, confirmation, cancellation and
    refund happened once."""
    failures, call, card, entry, count = SAGA_POINTS[point]
    failures.fail_next(call, 3)  # holds the saga at the point while Restate retries
    invocation = lab.ingress.send("BookingWorkflow", "Run", booking(card),
                                  key=f"fault-{uuid.uuid4().hex[:8]}")
    lab.admin.wait_for_entry(invocation, entry, count=count)
    CRASHES[crash](lab)
    declined = card == travel.DECLINED_TEST_CARD
    try:
        lab.ingress.attach(invocation)
        assert not declined
    except IngressError as error:
        assert declined and error.status == 402, error

    assert failures.fired(call) == 3
    assert_each_effect_once(declined)


def assert_each_effect_once(declined: bool) -> None:
    """Each reservation, charge, confirmation, cancellation and refund took effect once (a
    step may have run again — its repeat is in the ledger as "(repeated)" or "already …")."""
    assert travel.flights.ledger.count("reserve") == travel.car_rentals.ledger.count("reserve") == 1
    if declined:
        assert travel.payments.ledger.count("charge") == 0
        assert travel.payments.ledger.count("refund", effect="refunded") == 0
        assert travel.payments.ledger.count("refund") >= 1
        for api in (travel.flights, travel.car_rentals):
            assert api.ledger.count("cancel", effect="cancelled") == 1
            assert api.ledger.count("confirm") == 0
    else:
        assert travel.payments.ledger.count("charge") == 1
        for api in (travel.flights, travel.car_rentals):
            assert api.ledger.count("confirm") == 1 and api.ledger.count("cancel") == 0


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
        assert not declined
    except IngressError as error:
        assert declined and error.status == 402, error

    assert api.failures.fired(call, lost_answer=True) == 1
    assert len([e for e in api.ledger.entries() if e["action"].startswith(call)]) == 2
    assert_each_effect_once(declined)


@pytest.mark.lab_restate
def test_kafka_record_redelivered_after_a_crash_is_processed_once(lab: Lab) -> None:
    """A record Restate read just before it was SIGKILLed may be read again from Kafka after
    the restart; the user sees one post and one feed update, not two (Restate deduplicates by
    partition offset)."""
    lab.subscribe("social-media-posts", "UserFeed", "ProcessPost")
    who = f"redelivery-{uuid.uuid4().hex[:6]}"
    social.moderation.script(who, 1)
    lab.broker.produce("social-media-posts", who, {"content": "once", "metadata": "m"})
    wait_until(lambda: social.social_media.ledger.count("create_post", user_id=who) > 0, 60,
               "the record to be picked up")
    lab.server.restart()
    wait_until(lambda: len(social.social_media.feed(who)) > 0, 60, "the feed update")
    assert social.social_media.ledger.count("create_post", user_id=who) == 1
    assert social.social_media.ledger.count("update_feed", user_id=who) == 1


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


@pytest.mark.parametrize("topic, service, handler", [
    ("social-media-posts", "UserFeed", "ProcessPost"),
    ("package-location-updates", "PackageTracker", "UpdateLocation"),
])
def test_kafka_record_without_a_key_fails_terminally(lab: Lab, topic: str, service: str,
                                                      handler: str) -> None:
    """A record with no key has no user/package to go to: that one invocation fails with
    "the record has no key", is not retried, and the topic keeps flowing."""
    lab.subscribe(topic, service, handler)
    marker = uuid.uuid4().hex
    lab.broker.produce(topic, None, {"content": marker, "metadata": "m", "location": marker,
                                     "timestamp": "t"})

    def failed() -> list[str]:
        rows = views.invocations(lab.admin, service=service, key="", handler=handler)
        return [r["failure"] for r in rows if r["failure"] and "has no key" in r["failure"]]

    wait_until(lambda: bool(failed()), 60, "the keyless record's failure")
    assert social.social_media.ledger.count("create_post", content=marker) == 0


PUBLIC_HANDLERS = [
    ("Greeter", None, "greet"),
    ("Flights", None, "Reserve"), ("Flights", None, "Confirm"), ("Flights", None, "Cancel"),
    ("CarRentals", None, "Reserve"), ("CarRentals", None, "Confirm"),
    ("CarRentals", None, "Cancel"),
    ("BookingWorkflow", "fault-malformed", "Run"),
    ("UserFeed", "someone", "ProcessPost"),
    ("PackageTracker", "pkg-malformed", "RegisterPackage"),
    ("PackageTracker", "pkg-malformed", "UpdateLocation"),
]


@pytest.mark.parametrize("body", ["{not json", "[1, 2]", "42", "null"])
@pytest.mark.parametrize("service, key, handler", PUBLIC_HANDLERS)
def test_malformed_http_body_is_a_400_with_no_side_effect(lab: Lab, service: str,
                                                          key: str | None, handler: str,
                                                          body: str) -> None:
    """The caller gets HTTP 400 and a message starting "malformed …" that names what is
    wrong; nothing is booked, posted or sent, and Restate does not retry it."""
    if service == "BookingWorkflow":
        key = f"fault-malformed-{uuid.uuid4().hex[:8]}"  # a workflow runs once per key
    drafts = mailer.ledger.count()
    with pytest.raises(IngressError) as rejected:
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
    lab.ingress.call("BookingWorkflow", "Run", booking(), key=trip)
    with pytest.raises(IngressError) as again:
        lab.ingress.call("BookingWorkflow", "Run", booking(), key=trip)
    assert again.value.status == 409
    assert travel.flights.ledger.count("reserve") == 1


def test_readme_survival_table_matches_the_fault_matrix() -> None:
    """Every case here is in the README's "What survives what" table, and every test the
    table names exists."""
    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    section = readme.split("## What survives what", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", section))
    assert named, "no tests named in the table"
    for path, name in named:
        assert re.search(rf"^def {name}\(", (root / path).read_text(), re.M), (path, name)
    here = set(re.findall(r"^def (test_\w+)\(", Path(__file__).read_text(), re.M))
    here.discard("test_readme_survival_table_matches_the_fault_matrix")
    missing = here - {name for path, name in named if path == "tests/test_fault_matrix.py"}
    assert not missing, f"fault-matrix cases missing from the README table: {missing}"
