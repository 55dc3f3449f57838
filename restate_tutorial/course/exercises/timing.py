"""Checks for the exercises of notebook 08 (time)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from ...lab import IngressError, Lab, LabError, wait_until
from ...lab.admin import sql_string
from ...simulated import fares, mailer
from .checking import answer, check, expect

#: How long the checks wait for a reminder or a watch to get where it should.
WITHIN = 12.0


def _eventually(condition: Callable[[], bool], within: float = WITHIN) -> bool:
    """Whether ``condition`` holds within ``within`` seconds (polled)."""
    try:
        wait_until(condition, within, "a condition of the check")
    except LabError:
        return False
    return True


def _unfinished_ids(lab: Lab, service: str, key: str, handler: str) -> list[str]:
    """Calls of ``handler`` for ``key`` that have not ended (scheduled ones included)."""
    return [row["id"] for row in lab.admin.sql(
        f"SELECT id FROM sys_invocation WHERE target_service_name = {sql_string(service)} "
        f"AND target_service_key = {sql_string(key)} AND target_handler_name = "
        f"{sql_string(handler)} AND status <> 'completed'")]


def _unfinished(lab: Lab, service: str, key: str, handler: str) -> int:
    return len(_unfinished_ids(lab, service, key, handler))


def _kill_unfinished(lab: Lab, service: str, key: str, handler: str) -> None:
    """Kill what a wrong answer left scheduled (a chain may schedule one more as it dies)."""
    for _ in range(20):
        ids = _unfinished_ids(lab, service, key, handler)
        if not ids:
            return
        for invocation in ids:
            lab.admin.kill(invocation)
        time.sleep(0.2)


@check("Exercise 8.1 · snooze a reminder")
def check_snooze(lab: Lab) -> None:
    who = f"traveller-{uuid.uuid4().hex[:6]}"
    try:
        _snooze_twice(lab, who)
    finally:
        _kill_unfinished(lab, "Reminder", who, "Remind")


def _snooze_twice(lab: Lab, who: str) -> None:
    answer(lab, "Reminder", "Set", {"in_seconds": 60}, key=who)
    for seconds in (30, 6):  # twice: the second snooze must find the first one's reminder
        snoozed = time.time()
        try:
            answer(lab, "Reminder", "Snooze", {"seconds": seconds}, key=who)
        except IngressError as error:
            expect(False, "Snooze to answer with the new reminder's invocation id",
                   f"Snooze answered HTTP {error.status}: {error.message}",
                   "cancel the pending reminder with ctx.cancel_invocation(pending), then "
                   "return await schedule(ctx, request[\"seconds\"])")
        # A cancelled reminder goes a moment after Snooze answered (long before the new one).
        _eventually(lambda: _unfinished(lab, "Reminder", who, "Remind") <= 1, 4)
        pending = _unfinished(lab, "Reminder", who, "Remind")
        expect(pending == 1, f"one reminder pending after snoozing {seconds} s",
               f"{pending} reminders pending", "cancel the pending reminder before "
               "scheduling a new one, and keep the new one's id in \"pending\" (schedule(...) "
               "does): the next snooze cancels that one")
    wait_until(lambda: mailer.inbox(who), WITHIN, "the snoozed reminder")
    [sent] = mailer.ledger.entries("notify", to=who)
    expect(sent["at"] >= snoozed + 6, "the reminder 6 s after the last snooze, not before",
           f"it came {sent['at'] - snoozed:.1f} s after the last snooze",
           "schedule the new reminder request[\"seconds\"] from now")
    left = _eventually(lambda: _unfinished(lab, "Reminder", who, "Remind") == 0)
    expect(left and len(mailer.inbox(who)) == 1, "exactly one reminder, and none left pending",
           f"{len(mailer.inbox(who))} sent, {_unfinished(lab, 'Reminder', who, 'Remind')} "
           "pending", "cancel the pending reminder when snoozing")
    late = lab.ingress.outcome(lab.ingress.send("Reminder", "Snooze", {"seconds": 3}, key=who))
    expect(isinstance(late, IngressError) and late.status == 404,
           "a snooze after the reminder was sent to be refused with HTTP 404",
           f"Snooze answered {late}", "clear \"pending\" when the reminder runs, as Remind does")


@check("Exercise 8.2 · give up after a number of checks")
def check_give_up_watch(lab: Lab) -> None:
    flight = f"KL{uuid.uuid4().hex[:6]}"
    try:
        _watch_until_it_gives_up(lab, flight)
    finally:
        for key in (flight, f"{flight}-b"):
            _kill_unfinished(lab, "LimitedWatch", key, "Check")


def _watch_until_it_gives_up(lab: Lab, flight: str) -> None:
    watcher = f"watcher-{flight}"
    answer(lab, "LimitedWatch", "Start", {"every_seconds": 0.3, "below": 100, "max_checks": 3,
                                          "notify": watcher}, key=flight)
    wait_until(lambda: lab.ingress.get("LimitedWatch", "Status", key=flight)["status"]
               != "watching" or fares.ledger.count("check", flight=flight) > 4, WITHIN,
               "the watch to give up, or to check a fifth time")
    checks = fares.ledger.count("check", flight=flight)
    state = lab.ingress.get("LimitedWatch", "Status", key=flight)
    expect(state["status"] == "gave up" and checks == 3,
           "a fare that never drops: three checks, then the status \"gave up\"",
           f"{checks} checks, status {state['status']!r}",
           "after the fare check, when checks reaches watch[\"max_checks\"], set the status "
           "to \"gave up\"")
    stopped = _eventually(lambda: _unfinished(lab, "LimitedWatch", flight, "Check") == 0)
    later = fares.ledger.count("check", flight=flight)
    expect(stopped and later == 3, "no check after giving up, and none scheduled",
           f"{later} checks in all, "
           f"{_unfinished(lab, 'LimitedWatch', flight, 'Check')} scheduled",
           "return after giving up, before next_check(...)")
    expect([m["subject"] for m in mailer.inbox(watcher)] == [f"{flight}: no luck"],
           "the watcher told once that the watch gave up", f"messages: {mailer.inbox(watcher)}",
           "notify watch[\"notify\"] in a journaled step (ctx.run_typed), with a message id "
           "of its own")

    flight = f"{flight}-b"  # the last allowed check finds the fare: an alert, not a give-up
    fares.script(flight, [520, 510, 480])
    answer(lab, "LimitedWatch", "Start", {"every_seconds": 0.3, "below": 500, "max_checks": 3,
                                          "notify": watcher}, key=flight)
    wait_until(lambda: lab.ingress.get("LimitedWatch", "Status", key=flight)["status"]
               != "watching", WITHIN, "the watch to end")
    state = lab.ingress.get("LimitedWatch", "Status", key=flight)
    expect(state["status"] == "alerted" and fares.ledger.count("check", flight=flight) == 3,
           "fares 520, 510, 480 with three checks allowed: the third check alerts",
           f"status {state['status']!r} after {fares.ledger.count('check', flight=flight)} "
           "checks", "give up only after the last check's fare was compared, not before it")
