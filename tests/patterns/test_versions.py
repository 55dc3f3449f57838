"""Changing code under running invocations (notebook 05): pinned deployments, a journal
mismatch and the ways out of it, a bug fixed under a stuck invocation, and the operator's
commands (cancel vs kill, pause/resume, purge, idempotency keys)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from restate_tutorial import views
from restate_tutorial.course.check_in import CheckInLab
from restate_tutorial.lab import IngressError, Lab, wait_until
from restate_tutorial.patterns.versions import check_in_service
from restate_tutorial.scenarios import GOOD_BOOKING
from restate_tutorial.simulated import airline, mailer, travel

MISMATCH = "[570 Journal mismatch]"


@pytest.fixture
def check_in(lab: Lab) -> Iterator[CheckInLab]:
    yield CheckInLab(lab)


def trip() -> str:
    return f"trip-{uuid.uuid4().hex[:8]}"


def test_an_invocation_finishes_on_the_deployment_it_started_on(check_in: CheckInLab) -> None:
    v1 = check_in.deploy("v1")
    old_trip, new_trip = trip(), trip()
    old = check_in.start(old_trip)
    v2 = check_in.deploy("v2")
    new = check_in.start(new_trip)
    pinned = {row["id"]: row.get("deployment") for row in
              views.invocations(check_in.lab.admin, service="CheckIn", show_deployment=True)}
    assert (pinned[old], pinned[new]) == (v1, v2)
    shown = {row["id"]: row["unfinished invocations"]
             for row in views.deployments(check_in.lab.admin)}
    assert shown[v1] >= 1 and shown[v2] >= 1
    check_in.open_boarding(old_trip)
    check_in.open_boarding(new_trip)
    assert check_in.lab.ingress.attach(old).endswith("(v1)")
    assert check_in.lab.ingress.attach(new).endswith("gate B7 (v2)")


def test_the_same_cell_twice_deploys_once_and_starts_one_invocation(check_in: CheckInLab
                                                                    ) -> None:
    assert check_in.deploy("v1") == check_in.deploy("v1")
    name = trip()
    assert check_in.start(name) == check_in.start(name)
    check_in.open_boarding(name)
    check_in.open_boarding(name)  # resolving twice changes nothing
    check_in.lab.admin.wait_for_status(check_in.start(name), "completed")
    assert airline.ledger.history(trip_id=name) == [
        "assign seat", "call back when boarding", "send boarding pass"]


def start_and_break(check_in: CheckInLab) -> tuple[str, str]:
    """A check-in waiting for boarding, its code replaced by the reordered version, boarding
    opened: it replays on the wrong code."""
    check_in.deploy("v1")
    name = trip()
    invocation = check_in.start(name)
    check_in.replace_code("v1", "reordered")
    check_in.open_boarding(name)
    row = check_in.lab.admin.wait_for_status(invocation, "backing-off", failure=MISMATCH)
    assert "seat request id != call back when boarding" in row["last_failure"]
    return name, invocation


def test_a_journal_mismatch_retries_until_the_compatible_code_is_back(check_in: CheckInLab
                                                                      ) -> None:
    name, invocation = start_and_break(check_in)
    shown = views.invocations(check_in.lab.admin, service="CheckIn")
    assert any(r["id"] == invocation and MISMATCH in r["failure"] for r in shown)
    check_in.replace_code("v1", "v1")
    check_in.lab.cli("invocations", "resume", invocation)  # retry now, not after the backoff
    assert check_in.lab.ingress.attach(invocation).endswith("(v1)")
    assert airline.ledger.history(trip_id=name) == [
        "assign seat", "call back when boarding", "send boarding pass"]


def test_killed_then_restarted_from_the_seat_on_the_latest_code(check_in: CheckInLab) -> None:
    name, invocation = start_and_break(check_in)
    check_in.lab.cli("invocations", "kill", invocation)
    assert check_in.lab.admin.wait_for_status(invocation, "completed")[
        "completion_failure"] == "[409] killed"
    fixed = check_in.deploy("v2")
    seat_index = next(r["index"] for r in views.journal(check_in.lab.admin, invocation)
                      if r["entry_type"] == "Notification: Run" and r["index"] > 3)
    again = check_in.lab.admin.restart_as_new(invocation, from_index=seat_index,
                                              deployment="latest")
    assert check_in.lab.admin.restart_as_new(invocation, from_index=seat_index) == again
    check_in.lab.admin.wait_for_entry(again, "Notification: Run", count=3)
    check_in.open_boarding(name)  # the new invocation asked for a call-back of its own
    assert check_in.lab.ingress.attach(again).endswith("gate B7 (v2)")
    assert check_in.lab.admin.wait_for_status(again, "completed")["pinned_deployment_id"] == fixed
    assert airline.ledger.history(trip_id=name) == [
        "assign seat", "call back when boarding", "call back when boarding",
        "send boarding pass"]  # the seat was assigned once: it came from the old journal


def test_a_stuck_invocation_paused_resumes_on_the_fixed_deployment(check_in: CheckInLab
                                                                   ) -> None:
    check_in.deploy("buggy")
    name = trip()
    invocation = check_in.start(name)
    check_in.open_boarding(name)
    assert "KeyError" in check_in.lab.admin.wait_for_status(
        invocation, "backing-off", failure="gate")["last_failure"]
    check_in.lab.cli("invocations", "pause", invocation)
    check_in.lab.admin.wait_for_status(invocation, "paused")
    fix = check_in.deploy("fix", "v2")
    check_in.lab.cli("invocations", "resume", invocation, "--deployment", "latest")
    assert check_in.lab.ingress.attach(invocation).endswith("gate B7 (v2)")
    assert check_in.lab.admin.wait_for_status(invocation, "completed")[
        "pinned_deployment_id"] == fix
    assert airline.ledger.history(trip_id=name) == [
        "assign seat", "call back when boarding", "send boarding pass"]


def test_replacing_code_of_an_unknown_deployment_says_which_exist(lab: Lab) -> None:
    with pytest.raises(Exception, match="is not a deployment served by lab.serve"):
        lab.replace_code("dp_nope", check_in_service("v1"))
    with pytest.raises(ValueError, match="unknown version"):
        check_in_service("v3")


@pytest.mark.usefixtures("fresh_ledgers")
def test_cancel_runs_the_compensations_and_kill_does_not(lab: Lab) -> None:
    travel.payments.failures.fail_next("charge", 1000)  # the saga is stuck at the charge
    cancelled, killed = f"cancel-{trip()}", f"kill-{trip()}"
    ids = {key: lab.ingress.send("BookingWorkflow", "Run", GOOD_BOOKING, key=key)
           for key in (cancelled, killed)}
    for invocation in ids.values():
        lab.admin.wait_for_status(invocation, "backing-off", failure="charge")
    lab.cli("invocations", "cancel", ids[cancelled])
    lab.cli("invocations", "kill", ids[killed])
    for invocation, ended in zip(ids.values(), ("cancelled", "killed"), strict=True):
        with pytest.raises(IngressError, match=f"409.*{ended}"):
            lab.ingress.attach(invocation)
    reservations = [e["reservation_id"] for e in travel.flights.ledger.entries("reserve")]
    statuses = sorted(travel.flights.status(r) for r in reservations)
    assert statuses == ["cancelled", "reserved"]  # the killed saga left its flight on hold
    assert_undone_once(travel.payments.ledger.history())


def assert_undone_once(payments: list[str]) -> None:
    """The cancelled saga's refund ran and found nothing charged. (It can run more than once:
    a step's effect can land before its result is journaled; a refund is safe to repeat.)"""
    assert payments and set(payments) == {"refund [nothing was charged]"}, payments


@pytest.mark.usefixtures("fresh_ledgers")
def test_pause_then_resume_continues_and_purge_frees_the_id(lab: Lab) -> None:
    travel.payments.failures.fail_next("charge", 1000)
    key = f"pause-{trip()}"
    invocation = lab.ingress.send("BookingWorkflow", "Run", GOOD_BOOKING, key=key)
    lab.admin.wait_for_status(invocation, "backing-off", failure="charge")
    lab.cli("invocations", "pause", invocation)
    lab.admin.wait_for_status(invocation, "paused")
    travel.payments.failures.clear()
    lab.cli("invocations", "resume", invocation)
    assert lab.ingress.attach(invocation)["amount"] == GOOD_BOOKING["payment_info"]["amount"]
    lab.cli("invocations", "purge", invocation)
    wait_until(lambda: lab.admin.sql(f"SELECT id FROM sys_invocation WHERE id = '{invocation}'")
               == [], 10, "the purged invocation gone from Restate's records")
    assert travel.payments.ledger.history() == ["charge"]


@pytest.mark.usefixtures("fresh_ledgers")
def test_an_idempotency_key_attaches_a_repeat_to_the_first_request(lab: Lab) -> None:
    key, request = f"greet-{trip()}", {"name": "Ada", "delay_seconds": 0}
    drafts = mailer.ledger.count("draft")
    first = lab.ingress.send("Greeter", "greet", request, idempotency_key=key)
    second = lab.ingress.send("Greeter", "greet", request, idempotency_key=key)
    answer = lab.ingress.call("Greeter", "greet", request, idempotency_key=key)
    assert first == second and answer["message"] == "Hello Ada!"
    assert mailer.ledger.count("draft") == drafts + 1
    row = lab.admin.sql(f"SELECT idempotency_key FROM sys_invocation WHERE id = '{first}'")
    assert row == [{"idempotency_key": key}]


@pytest.mark.usefixtures("fresh_ledgers")
def test_a_saga_cancelled_twice_still_undoes_everything(lab: Lab) -> None:
    """A second cancel (another client, a retried request, a cell run again) reaches the saga
    while it undoes; without `sagas.undo` it stopped the compensations before the first one."""
    travel.payments.failures.fail_next("charge", 1000)
    saga = lab.ingress.send("BookingWorkflow", "Run", GOOD_BOOKING, key=f"twice-{trip()}")
    lab.admin.wait_for_status(saga, "backing-off", failure="charge")
    lab.admin.cancel(saga)
    lab.admin.cancel(saga)
    with pytest.raises(IngressError, match="409.*cancelled"):
        lab.ingress.attach(saga)
    for api in (travel.flights, travel.car_rentals):  # a repeat says "already cancelled"
        assert [h for h in api.ledger.history() if "already" not in h] == [
            "reserve", "cancel [cancelled]"], api.ledger.history()
    assert_undone_once(travel.payments.ledger.history())
