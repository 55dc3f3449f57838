"""Checks for the exercises of notebook 07 (workflows that wait)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from ...lab import IngressError, Lab
from ...scenarios import GOOD_BOOKING
from ...simulated import mailer, travel
from .checking import (
    HOST,
    SERVER,
    answer,
    check,
    crash,
    eventually,
    expect,
    journal_entries,
    settle,
)

#: How long the checks give a workflow to end once it has what it waits for.
ENDS_WITHIN = 10.0
#: 7.2: how soon a workflow must end once its promise is completed.
DECIDED_WITHIN = 1.5


def _ending(lab: Lab, invocation: str, what: str, stuck_hint: str) -> Any:
    """The invocation's result, or the IngressError it failed with."""
    try:
        return settle(lab, invocation, what, within=ENDS_WITHIN, stuck_hint=stuck_hint)
    except IngressError as error:
        return error


def _start(lab: Lab, service: str, body: dict[str, Any], key: str) -> str:
    invocation = lab.ingress.send(service, "Run", body, key=key)
    lab.admin.wait_for_entry(invocation, "Command: GetPromise", timeout=ENDS_WITHIN)  # it waits
    return invocation


@check("Exercise 7.1 · withdraw a request while it waits")
def check_withdraw(lab: Lab) -> None:
    trip = f"trip-{uuid.uuid4().hex[:8]}"
    reserved = travel.flights.ledger.count("reserve")
    invocation = _start(lab, "TripRequest", GOOD_BOOKING, trip)
    crash(lab, SERVER, "while Run waits for its decision")
    try:
        answer(lab, "TripRequest", "Withdraw", {"reason": "plans changed"}, key=trip)
    except IngressError as error:
        expect(False, "Withdraw to accept a withdrawal while Run waits",
               f"Withdraw answered HTTP {error.status}: {error.message}",
               "in Withdraw, resolve the promise \"decision\" with the withdrawal and its "
               "reason, e.g. {\"withdrawn\": True, \"reason\": request[\"reason\"]}, and "
               "return \"withdrawn\"")
    ended = _ending(lab, invocation, "TripRequest/Run", "Run waits on the promise \"decision\": "
                    "Withdraw must complete that promise, so that Run wakes up")
    expect(isinstance(ended, IngressError) and ended.status == 410
           and "plans changed" in ended.message,
           "Run to end with HTTP 410, naming the traveller's reason (\"plans changed\")",
           f"Run ended with {ended}",
           "in Run, when the decision is a withdrawal, raise TerminalError(f\"withdrawn by the "
           "traveller: {reason}\", 410)")
    status = lab.ingress.get("TripRequest", "Status", key=trip)
    expect(status == "withdrawn", 'Status to say "withdrawn"', f"Status answered {status!r}",
           'set the state "status" to "withdrawn" in Run before raising')
    expect(travel.flights.ledger.count("reserve") == reserved, "nothing reserved",
           f"the flight API saw {travel.flights.ledger.count('reserve') - reserved} reservation(s)",
           "end Run before the booking when the request was withdrawn")
    late = lab.ingress.outcome(lab.ingress.send("TripRequest", "Decide",
                                                {"approved": True, "by": "Ada"}, key=trip))
    expect(isinstance(late, IngressError) and late.status == 409,
           "a decision after the withdrawal to be refused with HTTP 409",
           f"Decide answered {late}", "leave Decide as it was: it answers 409 when the promise "
           "is completed already")
    _withdraw_after_approval(lab, f"{trip}-approved")
    _rejected_with_a_reason(lab, f"{trip}-rejected")


def _withdraw_after_approval(lab: Lab, trip: str) -> None:
    invocation = _start(lab, "TripRequest", GOOD_BOOKING, trip)
    answer(lab, "TripRequest", "Decide", {"approved": True, "by": "Ada"}, key=trip)
    late = lab.ingress.outcome(lab.ingress.send("TripRequest", "Withdraw", {"reason": "too late"},
                                                key=trip))
    expect(isinstance(late, IngressError) and late.status == 409,
           "a withdrawal after the approval to be refused with HTTP 409",
           f"Withdraw answered {late}", "complete the promise in Withdraw (resolve it): a "
           "promise is completed once, so resolving it again fails; answer 409 then")
    booked = _ending(lab, invocation, "TripRequest/Run", "Run waits on the promise \"decision\"")
    expect(isinstance(booked, dict) and "payment" in booked,
           "the approved trip booked, the late withdrawal changing nothing",
           f"Run ended with {booked}", "treat only a withdrawal as one: check a field only "
           "Withdraw sets, e.g. decision.get(\"withdrawn\")")


def _rejected_with_a_reason(lab: Lab, trip: str) -> None:
    invocation = _start(lab, "TripRequest", GOOD_BOOKING, trip)
    answer(lab, "TripRequest", "Decide",
           {"approved": False, "by": "Ada", "reason": "over budget"}, key=trip)
    ended = _ending(lab, invocation, "TripRequest/Run", "Run waits on the promise \"decision\"")
    expect(isinstance(ended, IngressError) and ended.status == 403,
           "a rejection that gives a reason still a rejection: HTTP 403",
           f"Run ended with {ended}", "tell a withdrawal by a field only Withdraw sets, e.g. "
           "decision.get(\"withdrawn\") — not by a reason, which a decision may carry too")


@check("Exercise 7.2 · escalate when the approver says nothing")
def check_escalation(lab: Lab) -> None:
    trip = f"trip-{uuid.uuid4().hex[:8]}"
    first, second = f"ada-{trip}", f"grace-{trip}"
    invocation = _start(lab, "EscalatingApproval",
                        {"approver": first, "escalate_to": second, "timeout_seconds": 2}, trip)
    _crash_in_the_second_wait(lab, invocation, first, second, 2, SERVER)
    ended = _ending(lab, invocation, "EscalatingApproval/Run",
                    "after asking the second approver, wait on the promise and a timer again")
    asked = (len(mailer.inbox(first)), len(mailer.inbox(second)))
    expect(asked == (1, 1), "nobody answering: the approver asked, then the second approver, "
           "once each", f"messages sent (approver, second approver): {asked}",
           "on a timeout, ask request[\"escalate_to\"] with ask(...) before waiting again")
    sends = len(mailer.ledger.entries(to=second))
    expect(sends == 1, "the second approver's message sent once, although restate-server "
           "crashed during the second wait", f"the mailer was asked {sends} times: Restate "
           "replayed Run after the crash, and a send that is not a journaled step ran again",
           "send it with ask(ctx, request[\"escalate_to\"], \"escalated\"): a journaled "
           "step (ctx.run_typed), which a replay does not run again")
    timers = [e for e in journal_entries(lab, invocation) if e["entry_type"] == "Command: Sleep"]
    expect(len(timers) == 2, "two durable timers in Run's journal: the first wait and the "
           "second", f"Run's journal holds {len(timers)} timer(s)", "wait the second time as "
           "the first: restate.select(decision=decision.value(), timeout=ctx.sleep(timeout)) "
           "— a timer of the process (asyncio.sleep, time.sleep) starts again after a crash")
    expect(isinstance(ended, IngressError) and ended.status == 408,
           "nobody answering: Run to end with HTTP 408 after the second wait",
           f"Run ended with {ended}", "raise the 408 only when the second wait times out too")
    _second_approver_answers(lab, f"{trip}-b")
    _first_approver_answers(lab, f"{trip}-c")


def _crash_in_the_second_wait(lab: Lab, invocation: str, first: str, second: str,
                              timeout: float, part: str) -> None:
    """Crash ``part`` once the second approver was asked (and, for a journaled answer, once
    the second wait is in the journal: a crash between the message and its journal entry
    would send it again, as it should)."""
    asked = eventually(lambda: mailer.inbox(second), timeout + 3)
    expect(asked, "nobody answering in time: the second approver asked",
           lambda: f"messages sent (approver, second approver): "
           f"{(len(mailer.inbox(first)), len(mailer.inbox(second)))}",
           "on a timeout, ask request[\"escalate_to\"] with ask(...) before waiting again")
    # The answer does not journal it? Crash all the same.
    eventually(lambda: sum(e["entry_type"] in ("Command: Sleep", "Command: Run")
                           for e in journal_entries(lab, invocation)) >= 4, 1)
    crash(lab, part, "during the second wait")


def _second_approver_answers(lab: Lab, trip: str) -> None:
    first, second = f"ada-{trip}", f"grace-{trip}"
    invocation = _start(lab, "EscalatingApproval",
                        {"approver": first, "escalate_to": second, "timeout_seconds": 4}, trip)
    _crash_in_the_second_wait(lab, invocation, first, second, 4, HOST)
    try:
        answer(lab, "EscalatingApproval", "Decide", {"approved": True, "by": second}, key=trip)
    except IngressError as error:
        expect(False, "the second approver's decision accepted while Run waits again",
               f"Decide answered {error}", "wait on the same promise \"decision\" again")
    decided = time.monotonic()
    result = _ending(lab, invocation, "EscalatingApproval/Run",
                     "wait on the promise \"decision\" again: Decide completes that one")
    took = time.monotonic() - decided
    expect(isinstance(result, dict) and result.get("approved_by") == second,
           f"the trip approved by the second approver ({second})", f"Run ended with {result}",
           "wait on the same promise \"decision\" again, raced against a new timer")
    expect(took < DECIDED_WITHIN, f"Run to end as soon as the second approver decided (within "
           f"{DECIDED_WITHIN:g} s)", f"Run ended {took:.1f} s after the decision: it waited "
           "for its timer first", "race the promise against the timer — restate.select("
           "decision=decision.value(), timeout=ctx.sleep(timeout)) — so that whichever comes "
           "first ends the wait")


def _first_approver_answers(lab: Lab, trip: str) -> None:
    first, second = f"ada-{trip}", f"grace-{trip}"
    invocation = _start(lab, "EscalatingApproval",
                        {"approver": first, "escalate_to": second, "timeout_seconds": 30}, trip)
    answer(lab, "EscalatingApproval", "Decide", {"approved": True, "by": first}, key=trip)
    result = _ending(lab, invocation, "EscalatingApproval/Run", "return once decided")
    expect(mailer.inbox(second) == [],
           "an approver who answers in time: the second approver never asked",
           f"the second approver got {len(mailer.inbox(second))} message(s)",
           "ask the second approver only when the first wait timed out")
    expect(isinstance(result, dict) and result.get("approved_by") == first,
           f"the trip approved by the approver ({first})", f"Run ended with {result}",
           "return {\"approved_by\": value[\"by\"]} as the starter does")
