"""A three-node Restate cluster in the lab: a node SIGKILLed mid-saga and mid-stream loses
nothing and repeats nothing; the node rejoins. Deterministic: the kill happens at a point
chosen from the journal, never at random."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psutil
import pytest

from restate_tutorial import views
from restate_tutorial.lab import Lab, wait_until
from restate_tutorial.patterns import event_transactions, sagas
from restate_tutorial.scenarios import GOOD_BOOKING
from restate_tutorial.simulated import social, travel

TOPIC = "social-media-posts"


@pytest.fixture(scope="module")
def cluster_lab() -> Iterator[Lab]:
    services = [sagas.flights, sagas.car_rentals, sagas.booking_workflow,
                event_transactions.user_feed]
    with Lab(services, nodes=3) as lab:
        lab.subscribe(TOPIC, "UserFeed", "ProcessPost")
        yield lab


@pytest.fixture(autouse=True)
def all_nodes_up(cluster_lab: Lab) -> Iterator[None]:
    travel.reset()
    social.reset()
    yield
    cluster_lab.server.start()  # bring back whatever a test killed


def test_three_nodes_form_one_cluster_on_loopback(cluster_lab: Lab) -> None:
    status = cluster_lab.cluster.status()
    for name in ("n1", "n2", "n3"):
        assert name in status
    assert "offline" not in status
    for node in cluster_lab.cluster.nodes:  # what each process listens on, not what we built
        listening = [c.laddr for c in psutil.Process(node.pid).net_connections("inet")
                     if c.status == psutil.CONN_LISTEN]
        assert {a.port for a in listening} >= {node.ports.ingress, node.ports.admin,
                                                node.ports.node}
        assert {a.ip for a in listening} == {"127.0.0.1"}, listening
    assert " · answered by http://127.0.0.1:" in views.invocations(cluster_lab.admin).title


def test_node_killed_mid_saga_the_saga_finishes_exactly_once(cluster_lab: Lab) -> None:
    travel.car_rentals.failures.fail_next("reserve", 3)  # holds the saga after the flight
    invocation = cluster_lab.ingress.send("BookingWorkflow", "Run", GOOD_BOOKING,
                                          key=f"cluster-{uuid.uuid4().hex[:8]}")
    cluster_lab.admin.wait_for_entry(invocation, "Notification: Call", count=1)
    cluster_lab.cluster.node(1).kill()

    result = cluster_lab.ingress.attach(invocation, timeout=120)
    assert cluster_lab.ingress.url != cluster_lab.cluster.node(1).ingress_url
    assert travel.flights.ledger.count("reserve") == travel.car_rentals.ledger.count("reserve") == 1
    # A step may run again when a node dies between doing it and journaling it; the
    # idempotency keys make the repeat harmless: one charge, one reservation each.
    assert travel.payments.ledger.count("charge", payment_id=result["payment"]) == 1
    assert {e["payment_id"] for e in travel.payments.ledger.entries("charge (repeated)")} <= {
        result["payment"]}
    assert travel.flights.ledger.count("confirm") == travel.car_rentals.ledger.count("confirm") == 1

    cluster_lab.cluster.node(1).start()  # it rejoins
    wait_until(lambda: "offline" not in cluster_lab.cluster.status(), 60, "n1 to rejoin")


def test_node_killed_mid_stream_every_record_once_and_in_order(cluster_lab: Lab) -> None:
    users = [f"c-user{i}-{uuid.uuid4().hex[:4]}" for i in range(4)]
    for user in users:
        social.moderation.script(user, 1)
    records = [(users[n % 4], {"content": f"post {n}", "metadata": "m"}) for n in range(24)]
    cluster_lab.broker.produce_many(TOPIC, records[:12])
    wait_until(lambda: social.social_media.ledger.count("update_feed") >= 4, 60,
               "the stream to be under way")
    cluster_lab.cluster.node(2).kill()
    cluster_lab.broker.produce_many(TOPIC, records[12:])
    wait_until(lambda: social.social_media.ledger.count("update_feed") >= 24, 120,
               "all 24 records after the node died")

    contents = [e["content"] for e in social.social_media.ledger.entries("create_post")]
    assert sorted(contents) == sorted(r["content"] for _, r in records)  # each exactly once
    for user in users:
        sent = [r["content"] for u, r in records if u == user]
        created = {e["post_id"]: e["content"] for e in
                   social.social_media.ledger.entries("create_post", user_id=user)}
        assert [created[p] for p in social.social_media.feed(user)] == sent  # per-key order
