"""Time: a reminder sent with a delay (and cancelled with its trip), and PriceWatch, a recurring
chain of delayed self-calls with at most one pending tick per flight — through double starts,
races, stops and crashes."""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

import pytest

from restate_tutorial import views
from restate_tutorial.lab import IngressError, Lab, wait_until
from restate_tutorial.lab.admin import sql_string
from restate_tutorial.patterns.schedules import next_slot
from restate_tutorial.scenarios import GOOD_BOOKING
from restate_tutorial.simulated import fares, mailer, travel

pytestmark = pytest.mark.usefixtures("fresh_ledgers")


def book(lab: Lab, remind_in: float) -> tuple[str, dict[str, Any]]:
    trip = f"trip-{uuid.uuid4().hex[:8]}"
    return trip, lab.ingress.call("TripReminders", "Book",
                                  {**GOOD_BOOKING, "remind_in_seconds": remind_in}, key=trip)


def reminders(trip: str) -> list[dict[str, str]]:
    return mailer.inbox(f"traveller-{trip}")


def test_a_booked_trip_is_reminded_once_after_the_delay(lab: Lab) -> None:
    trip, booked = book(lab, 1)
    reminder = booked["reminder"]
    lab.admin.wait_until_ended(reminder["invocation_id"])
    assert reminders(trip) == [{"subject": f"Check in for trip {trip}",
                                "body": "Check-in is open."}]
    [sent] = mailer.ledger.entries("notify", to=f"traveller-{trip}")
    assert sent["at"] >= reminder["due_at"]  # not before its time
    assert lab.ingress.get("TripReminders", "Status", key=trip)["status"] == "reminded"


def test_cancelling_the_trip_cancels_its_pending_reminder_and_undoes_the_booking(
        lab: Lab) -> None:
    trip, booked = book(lab, 600)
    assert lab.ingress.call("TripReminders", "Cancel", key=trip) == "cancelled"
    # A scheduled call that is cancelled never starts: Restate drops it from its records.
    reminder = sql_string(booked["reminder"]["invocation_id"])
    wait_until(lambda: not lab.admin.sql(f"SELECT id FROM sys_invocation WHERE id = {reminder}"),
               30, "the cancelled reminder to be gone")
    assert reminders(trip) == []
    assert travel.flights.ledger.history(reservation_id=booked["flight_reservation"]) == [
        "reserve", "confirm", "cancel [cancelled]"]
    assert travel.payments.ledger.count("refund", payment_id=booked["payment"]) == 1
    with pytest.raises(IngressError) as again:
        lab.ingress.call("TripReminders", "Cancel", key=trip)
    assert again.value.status == 404


def test_a_trip_booked_twice_is_409_and_keeps_one_reminder(lab: Lab) -> None:
    trip, booked = book(lab, 600)
    with pytest.raises(IngressError) as again:
        lab.ingress.call("TripReminders", "Book", {**GOOD_BOOKING, "remind_in_seconds": 1},
                         key=trip)
    assert again.value.status == 409
    due = [r for r in views.scheduled(lab.admin, "TripReminders")
           if r["target"] == f"TripReminders/{trip}/Remind"]
    assert [r["id"] for r in due] == [booked["reminder"]["invocation_id"]]
    assert 590 < float(due[0]["in"].removesuffix(" s")) <= 600  # due in ten minutes
    lab.ingress.call("TripReminders", "Cancel", key=trip)


@pytest.mark.parametrize("delay", ["0", "-1", '"soon"', "1e300", "NaN", "1" + "0" * 400])
def test_a_malformed_delay_is_400_before_anything_is_booked(lab: Lab, delay: str) -> None:
    body = json.dumps(GOOD_BOOKING)[:-1] + f', "remind_in_seconds": {delay}}}'  # raw JSON
    with pytest.raises(IngressError) as refused:
        lab.ingress.call("TripReminders", "Book", body, key=f"bad-{uuid.uuid4().hex[:6]}")
    assert refused.value.status == 400, refused.value
    assert travel.flights.ledger.count() == 0


@pytest.mark.lab_restate
def test_restate_crashing_while_a_reminder_is_pending_still_sends_it_once(lab: Lab) -> None:
    trip, booked = book(lab, 2)
    lab.server.restart()
    lab.admin.wait_until_ended(booked["reminder"]["invocation_id"])
    assert len(reminders(trip)) == 1


# -- PriceWatch ------------------------------------------------------------------------------

def flight() -> str:
    return f"KL{uuid.uuid4().hex[:6]}"


def start(lab: Lab, flight_id: str, every: float = 0.2, below: float = 100) -> dict[str, Any]:
    return lab.ingress.call("PriceWatch", "Start", {"every_seconds": every, "below": below,
                                                    "notify": f"watcher-{flight_id}"},
                            key=flight_id)


def status(lab: Lab, flight_id: str) -> dict[str, Any]:
    return lab.ingress.get("PriceWatch", "Status", key=flight_id)


def pending_ticks(lab: Lab, flight_id: str) -> int:
    """Ticks of this flight that wait to start: scheduled, or queued for the object (pending).
    Not 'ready': restate-server 1.7 also shows the tick that runs now as ready, between its
    run and its end, when it has already scheduled the next one (measured: one read in ~60
    of a chain every 0.2 s saw a ready tick and its scheduled successor)."""
    return lab.admin.sql(
        "SELECT count(*) AS n FROM sys_invocation WHERE target_service_name = 'PriceWatch' AND "
        f"target_service_key = {sql_string(flight_id)} AND target_handler_name = 'Tick' AND "
        "status IN ('scheduled', 'pending')")[0]["n"]


def settled_ticks(lab: Lab, flight_id: str, expected: int) -> None:
    """Wait until ``expected`` ticks are pending: a cancelled tick is dropped from Restate's
    records a moment after the handler that cancelled it answered."""
    wait_until(lambda: pending_ticks(lab, flight_id) == expected, 10,
               f"{expected} pending tick(s) for {flight_id}")


def checks(flight_id: str) -> int:
    return fares.ledger.count("check", flight=flight_id)


def test_a_watch_checks_on_its_period_and_alerts_once_when_the_fare_drops(lab: Lab) -> None:
    watched = flight()
    fares.script(watched, [520, 510, 480])
    start(lab, watched, below=500)
    wait_until(lambda: status(lab, watched)["status"] == "alerted", 30, "the alert")
    assert [e["fare"] for e in fares.ledger.entries("check", flight=watched)] == [520, 510, 480]
    assert mailer.inbox(f"watcher-{watched}") == [
        {"subject": f"{watched} costs 480", "body": "Below your limit of 500."}]
    assert status(lab, watched)["pending_tick"] is None and pending_ticks(lab, watched) == 0


def test_starting_twice_leaves_one_chain(lab: Lab) -> None:
    watched = flight()
    start(lab, watched, every=60)  # its first tick is far off: the second start replaces it
    second = start(lab, watched)
    settled_ticks(lab, watched, 1)
    wait_until(lambda: checks(watched) >= 5, 30, "five checks")
    # Every check came from the second chain (generation 2), one after the other.
    ids = [e["request_id"] for e in fares.ledger.entries("check", flight=watched)]
    assert ids[:5] == [f"{watched}-2-{n}" for n in range(1, 6)], ids
    assert second["status"] == "watching"
    # (Polled: a tick that just became due is counted as it changes state.)
    wait_until(lambda: pending_ticks(lab, watched) <= 1, 10, "at most one pending tick")
    lab.ingress.call("PriceWatch", "Stop", key=watched)


def test_stop_cancels_the_pending_tick_and_no_tick_runs_after_it(lab: Lab) -> None:
    watched, witness = flight(), flight()
    start(lab, watched)
    wait_until(lambda: checks(watched) >= 2, 30, "two checks")
    stopped = lab.ingress.call("PriceWatch", "Stop", key=watched)
    after_stop = checks(watched)
    assert stopped["status"] == "stopped" and stopped["pending_tick"] is None
    settled_ticks(lab, watched, 0)
    # A second watch with the same period ticks three times meanwhile; the stopped one, never.
    start(lab, witness)
    wait_until(lambda: checks(witness) >= 3, 30, "three checks of another watch")
    assert checks(watched) == after_stop
    lab.ingress.call("PriceWatch", "Stop", key=witness)


def test_start_racing_stop_leaves_one_chain_or_none(lab: Lab) -> None:
    for _ in range(3):
        watched = flight()
        start(lab, watched)
        racers = [threading.Thread(target=start, args=(lab, watched)),
                  threading.Thread(target=lab.ingress.call, args=("PriceWatch", "Stop"),
                                   kwargs={"key": watched})]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join()
        final = status(lab, watched)
        settled_ticks(lab, watched, 1 if final["status"] == "watching" else 0)
        lab.ingress.call("PriceWatch", "Stop", key=watched)
        settled_ticks(lab, watched, 0)


@pytest.mark.lab_restate
@pytest.mark.parametrize("crashed", ["restate-server", "service host"])
def test_the_chain_survives_a_crash_and_a_start_after_it_leaves_one_chain(
        lab: Lab, crashed: str) -> None:
    watched = flight()
    start(lab, watched)
    wait_until(lambda: checks(watched) >= 2, 30, "two checks")
    (lab.server if crashed == "restate-server" else lab.host).restart()
    before = checks(watched)
    wait_until(lambda: checks(watched) >= before + 3, 30, "three checks after the crash")
    ids = [e["request_id"] for e in fares.ledger.entries("check", flight=watched)]
    assert ids == [f"{watched}-1-{n}" for n in range(1, len(ids) + 1)]  # none lost or doubled
    # Started again after the crash: the old chain is replaced, not joined by a second one.
    start(lab, watched)
    started = checks(watched)
    settled_ticks(lab, watched, 1)
    wait_until(lambda: fares.ledger.count("check", request_id=f"{watched}-2-3") == 1, 30,
               "three checks of the new chain")
    # One chain: every check since is the new chain's, in order, none doubled; one tick waits.
    new = [e["request_id"] for e in fares.ledger.entries("check", flight=watched)][started:]
    assert new[:3] == [f"{watched}-2-{n}" for n in (1, 2, 3)], new
    assert pending_ticks(lab, watched) <= 1
    lab.ingress.call("PriceWatch", "Stop", key=watched)
    settled_ticks(lab, watched, 0)


@pytest.mark.parametrize("body", [
    {"every_seconds": 0, "below": 1, "notify": "a"},
    {"every_seconds": 1e-9, "below": 1, "notify": "a"},  # ~80 ticks a second, unrefused
    {"every_seconds": 0.099, "below": 1, "notify": "a"},
    {"every_seconds": "1", "below": 1, "notify": "a"},
    {"every_seconds": 1, "notify": "a"},
    {"every_seconds": 1, "below": 1},
])
def test_a_malformed_watch_is_400_and_schedules_nothing(lab: Lab, body: dict[str, Any]) -> None:
    watched = flight()
    with pytest.raises(IngressError) as refused:
        lab.ingress.call("PriceWatch", "Start", body, key=watched)
    assert refused.value.status == 400, refused.value
    assert pending_ticks(lab, watched) == 0 and status(lab, watched)["status"] == "idle"


# -- CronJob: the "cron in Restate" recipe ----------------------------------------------------

def cron_runs(job: str) -> list[tuple[float, float]]:
    """(slot, when it ran) of each run of ``job``, oldest first."""
    return [(float(e["body"].removeprefix("slot ")), e["at"])
            for e in mailer.ledger.entries("notify", to=f"ops-{job}")]


@pytest.mark.parametrize("every", [1e-300, 1e-9, 0.05, 0, -1])
def test_a_cron_job_with_a_period_under_the_floor_is_400_and_schedules_nothing(
        lab: Lab, every: float) -> None:
    job = f"floor-{uuid.uuid4().hex[:6]}"
    with pytest.raises(IngressError) as refused:
        lab.ingress.call("CronJob", "Start", {"every_seconds": every}, key=job)
    assert refused.value.status == 400 and "from 0.1 to" in refused.value.message
    assert lab.admin.sql("SELECT id FROM sys_invocation WHERE target_service_name = 'CronJob'"
                         f" AND target_service_key = {sql_string(job)} AND "
                         "target_handler_name = 'Tick'") == []


def test_next_slot_is_the_next_multiple_of_the_period() -> None:
    assert next_slot(120.0, 60) == 180.0 and next_slot(179.9, 60) == 180.0
    assert next_slot(1_796_239_871.5, 60) == 1_796_239_920.0  # every minute, at :00


@pytest.mark.lab_restate
def test_a_cron_job_runs_once_per_slot_and_skips_the_slots_missed_while_restate_was_down(
        lab: Lab) -> None:
    job = f"report-{uuid.uuid4().hex[:6]}"
    lab.ingress.call("CronJob", "Start", {"every_seconds": 1}, key=job)
    wait_until(lambda: len(cron_runs(job)) >= 2, 30, "two runs")
    down = time.time()
    lab.server.kill()
    time.sleep(3.5)  # the downtime itself: three slots or more go by
    up = time.time()
    lab.server.start()
    wait_until(lambda: len([r for r in cron_runs(job) if r[1] > up]) >= 3, 30,
               "three runs after the restart")
    lab.ingress.call("CronJob", "Stop", key=job)
    runs = cron_runs(job)
    slots = [slot for slot, _ in runs]
    assert slots == sorted(set(slots)) and all(slot == int(slot) for slot in slots)  # once each
    assert all(ran >= slot for slot, ran in runs)  # never early
    assert not [ran for _, ran in runs if down + 1 < ran < up]  # nothing ran while down
    # Catch-up: of the slots that went by while it was down, one ran (late); the rest were
    # skipped, not run in a burst after the restart.
    assert len([slot for slot in slots if down < slot < up]) <= 1, (down, up, runs)
