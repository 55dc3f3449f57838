"""The tutorial's own services tested the way a user tests theirs: with the pytest plugin's
fixtures only (restate_lab, restate_key, restate_views) — no project conftest needed."""

from __future__ import annotations

import pytest

from restate_tutorial.lab import AdminClient, IngressError, wait_until
from restate_tutorial.patterns import event_transactions, sagas
from restate_tutorial.scenarios import SEED_BOOKING
from restate_tutorial.simulated import social
from restate_tutorial.testing_lab import TestLab

DECLINED = SEED_BOOKING  # the original example's booking: its test card is declined


def test_declined_payment_runs_the_compensations_in_reverse(
        restate_lab: TestLab, restate_key: str, restate_views) -> None:  # noqa: ANN001
    restate_lab.serve(sagas.flights, sagas.car_rentals, sagas.booking_workflow)
    invocation = restate_lab.ingress.send("BookingWorkflow", "Run", DECLINED, key=restate_key)
    with pytest.raises(IngressError) as declined:
        restate_lab.ingress.attach(invocation)
    assert declined.value.status == 402
    journal = restate_views.journal(restate_lab.admin, invocation)
    undo = [row["name"] or row["detail"].split("/")[-1].split()[0]
            for row in journal if row["entry_type"] in ("Command: Run", "Command: Call")]
    assert undo[-3:] == ["refund", "Cancel", "Cancel"]
    calls = [row["detail"] for row in journal if row["entry_type"] == "Command: Call"]
    assert "CarRentals" in calls[-2] and "Flights" in calls[-1]  # car first, then the flight


def test_a_kafka_post_reaches_the_feed(restate_lab: TestLab, restate_key: str,
                                       restate_admin: AdminClient) -> None:
    restate_lab.serve(event_transactions.user_feed)
    restate_lab.subscribe("social-media-posts", "UserFeed", "ProcessPost")
    social.moderation.script(restate_key, 1)
    restate_lab.broker.produce("social-media-posts", restate_key,
                               {"content": "tested", "metadata": "public"})
    wait_until(lambda: len(social.social_media.feed(restate_key)) == 1, 60, "the feed update")
    [post] = social.social_media.ledger.entries("create_post", user_id=restate_key)
    assert post["content"] == "tested"
    # The feed update is the invocation's last step: wait for its end before reading its row.
    [row] = restate_admin.wait_until_ended(service="UserFeed", key=restate_key)
    assert row["completion_result"] == "success"
