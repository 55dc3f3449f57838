"""Checks for the exercises of notebook 08 (time)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from ...lab import IngressError, Lab
from ...lab.admin import sql_string
from ...simulated import fares, mailer
from .checking import (
    SERVER,
    answer,
    check,
    crash,
    eventually,
    expect,
    journal_entries,
    settle,
)

#: How long the checks wait for a reminder or a watch to get where it should.
WITHIN = 12.0


def _eventually(condition: Callable[[], bool], within: float = WITHIN) -> bool:
    return eventually(condition, within)


def _unfinished(lab: Lab, service: str, key: str, handler: str) -> int:
    """How many calls of ``handler`` for ``key`` have not ended (scheduled ones included)."""
    return len(lab.admin.sql(
        f"SELECT id FROM sys_invocation WHERE target_service_name = {sql_string(service)} "
        f"AND target_service_key = {sql_string(key)} AND target_handler_name = "
        f"{sql_string(handler)} AND status <> 'completed'"))


def _checks(lab: Lab, flight: str) -> int:
    """How many times the watch of ``flight`` checked (Check invocations, whatever they did)."""
    return int(lab.admin.sql("SELECT count(*) AS n FROM sys_invocation WHERE "
                             "target_service_name = 'LimitedWatch' AND target_service_key = "
                             f"{sql_string(flight)} AND target_handler_name = 'Check'")[0]["n"])


def _last_check(lab: Lab, flight: str) -> str:
    """The last Check of the watch of ``flight`` (the one that gave up)."""
    return lab.admin.sql("SELECT id FROM sys_invocation WHERE target_service_name = "
                         f"'LimitedWatch' AND target_service_key = {sql_string(flight)} AND "
                         "target_handler_name = 'Check' ORDER BY created_at DESC LIMIT 1")[0]["id"]


@check("Exercise 8.1 · snooze a reminder")
def check_snooze(lab: Lab) -> None:
    _snooze_twice(lab, f"traveller-{uuid.uuid4().hex[:6]}")


def _snooze_twice(lab: Lab, who: str) -> None:
    answer(lab, "Reminder", "Set", {"in_seconds": 60}, key=who)
    for seconds in (30, 6):  # twice: the second snooze must find the first one's reminder
        snoozed = time.time()
        try:
            snooze = lab.ingress.send("Reminder", "Snooze", {"seconds": seconds}, key=who)
            settle(lab, snooze, "Reminder/Snooze")
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
        cancels = [e for e in journal_entries(lab, snooze) if e["entry_type"] == "Command: "
                   "SendSignal"]
        expect(len(cancels) == 1, "Snooze to cancel the pending reminder with a command of "
               "its journal (ctx.cancel_invocation)", f"Snooze's journal holds "
               f"{len(cancels)} cancellation(s)", "cancel with ctx.cancel_invocation(pending): "
               "a call of the admin API from a handler is an effect outside its journal (a "
               "retry repeats it), and a deployed service has no admin address to call")
    crash(lab, SERVER, "while the snoozed reminder is scheduled")
    came = _eventually(lambda: mailer.inbox(who))
    expect(came, "the reminder 6 s after the last snooze",
           f"no reminder within {WITHIN:g} s of the last snooze; "
           f"{_unfinished(lab, 'Reminder', who, 'Remind')} pending",
           "schedule the new reminder with schedule(ctx, request[\"seconds\"]): a delayed "
           "call (ctx.object_send with send_delay) that Restate keeps through a crash")
    sent = mailer.ledger.entries("notify", to=who)[0]
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
    _watch_until_it_gives_up(lab, f"KL{uuid.uuid4().hex[:6]}")


def _watch_until_it_gives_up(lab: Lab, flight: str) -> None:
    watcher = f"watcher-{flight}"
    fares.failures.lose_answer_next(flight)  # the first check takes effect; its step is retried
    answer(lab, "LimitedWatch", "Start", {"every_seconds": 0.3, "below": 100, "max_checks": 3,
                                          "notify": watcher}, key=flight)
    if _eventually(lambda: fares.ledger.count("check", flight=flight) >= 1, 5):
        crash(lab, SERVER, "between two checks")
    _eventually(lambda: lab.ingress.get("LimitedWatch", "Status", key=flight)["status"]
                != "watching" or _checks(lab, flight) > 4)
    checks, fares_checked = _checks(lab, flight), fares.ledger.count("check", flight=flight)
    state = lab.ingress.get("LimitedWatch", "Status", key=flight)
    expect(state["status"] == "gave up" and checks == fares_checked == 3,
           "a fare that never drops: three checks, then the status \"gave up\" — although "
           "the first check's answer was lost (its step ran again) and restate-server "
           "crashed between two checks",
           f"{checks} checks ({fares_checked} fares checked), status {state['status']!r}",
           "count the checks in the object's state (ctx.get/ctx.set), not in memory or by the "
           "clock — a replay runs the code again, a crash makes checks late — and give up "
           "when checks reaches watch[\"max_checks\"], after that check's fare")
    stopped = _eventually(lambda: _unfinished(lab, "LimitedWatch", flight, "Check") == 0)
    later = _checks(lab, flight)
    expect(stopped and later == 3, "no check after giving up, and none scheduled",
           f"{later} checks in all, "
           f"{_unfinished(lab, 'LimitedWatch', flight, 'Check')} scheduled",
           "return after giving up, before next_check(...)")
    told = mailer.ledger.entries(to=watcher)
    expect(len(told) == 1, "the watcher told once that the watch gave up",
           f"the mailer was asked {len(told)} times: {[m['subject'] for m in told]}",
           "notify watch[\"notify\"] once, in a journaled step (ctx.run_typed), with a "
           "message id of its own")
    steps = [e["name"] for e in journal_entries(lab, _last_check(lab, flight))
             if e["entry_type"] == "Command: Run"]
    expect(len(steps) >= 2, "the message a journaled step of the check that gave up",
           f"that check's journal holds the steps {steps}: the message is not among them, so "
           "a retry of that check would send it again", "send it with await ctx.run_typed("
           "\"give up\", mailer.notify, RunOptions(), …)")

    flight = f"{flight}-b"  # the last allowed check finds the fare: an alert, not a give-up
    fares.script(flight, [520, 510, 480])
    answer(lab, "LimitedWatch", "Start", {"every_seconds": 0.3, "below": 500, "max_checks": 3,
                                          "notify": watcher}, key=flight)
    _eventually(lambda: lab.ingress.get("LimitedWatch", "Status", key=flight)["status"]
                != "watching")
    state = lab.ingress.get("LimitedWatch", "Status", key=flight)
    expect(state["status"] == "alerted" and fares.ledger.count("check", flight=flight) == 3,
           "fares 520, 510, 480 with three checks allowed: the third check alerts",
           f"status {state['status']!r} after {fares.ledger.count('check', flight=flight)} "
           "checks", "give up only after the last check's fare was compared, not before it")
