"""What a check says: passed, or what was expected, what happened, and a hint — and the
tools every check uses to crash the answer. The standard they meet is the package's docstring."""

from __future__ import annotations

import functools
import html
import inspect
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from ...lab import IngressError, Lab, LabError, wait_until
from ...lab.admin import sql_string

#: The longest a check waits for one answer of your handler (one that is being retried is
#: reported at once); while it waits, it says so every PROGRESS_SECONDS.
ANSWER_SECONDS = 60.0
PROGRESS_SECONDS = 5.0
#: Failures the checks script themselves (the simulated systems' transient errors).
SCRIPTED = "scripted"
#: The parts of the lab a check crashes.
HOST, SERVER = "the service host", "restate-server"
#: How Restate records an attempt cut off by a crash (not the answer's failure).
CUT_OFF = ("broken pipe", "stream closed", "error trying to connect", "connection reset",
           "connection refused", "connection closed")
_last_crash = [0.0]  # when a check last crashed a part of the lab (monotonic)


@dataclass(frozen=True)
class CheckResult:
    exercise: str
    passed: bool
    expected: str = ""
    happened: str = ""
    hint: str = ""

    def __str__(self) -> str:
        if self.passed:
            return f"✓ {self.exercise}: passed."
        return (f"✗ {self.exercise}: not yet.\n  expected: {self.expected}\n"
                f"  happened: {self.happened}\n  hint:     {self.hint}")

    def _repr_html_(self) -> str:
        if self.passed:
            return f"<p style='color:#1a7f37'><b>✓ {html.escape(self.exercise)}</b>: passed.</p>"
        rows = "".join(f"<tr><th style='text-align:left'>{name}</th>"
                       f"<td style='text-align:left'>{html.escape(value)}</td></tr>"
                       for name, value in (("expected", self.expected),
                                           ("happened", self.happened), ("hint", self.hint)))
        return (f"<p style='color:#9a6700'><b>✗ {html.escape(self.exercise)}</b>: not yet.</p>"
                f"<table>{rows}</table>")


class NotYet(Exception):
    def __init__(self, expected: str, happened: str, hint: str) -> None:
        super().__init__(expected)
        self.expected, self.happened, self.hint = expected, happened, hint


def expect(condition: bool, expected: str, happened: str | Callable[[], str], hint: str) -> None:
    """Stop the check with a "not yet" unless ``condition`` holds."""
    if not condition:
        raise NotYet(expected, happened() if callable(happened) else happened, hint)


def answer(lab: Lab, service: str, handler: str, body: Any = None, *,
           key: str | None = None) -> Any:
    """Call your handler and return its answer, watching it as :func:`settle` does."""
    return settle(lab, lab.ingress.send(service, handler, body, key=key), f"{service}/{handler}")


def settle(lab: Lab, invocation: str, what: str, within: float | None = None,
           stuck_hint: str | None = None, cancel_if_stuck: bool = False) -> Any:
    """Wait for ``invocation`` to end and return its result, watching Restate's record of it.

    A failed attempt (other than the checks' own scripted ones) stops the check at once with
    that failure and the fix; so does no end within ``within`` seconds (ANSWER_SECONDS unless
    the check expects an end sooner). Either way the invocation is killed. A failed invocation
    (a TerminalError) raises IngressError, as a call does. ``stuck_hint`` replaces the general
    hint for an invocation that did not fail but did not end either; ``cancel_if_stuck``
    cancels such an invocation instead of killing it, so that it unwinds (its calls are
    cancelled and give back what they hold — a killed call gives nothing back)."""
    limit = within or ANSWER_SECONDS
    query = ("SELECT status, last_failure FROM sys_invocation WHERE id = "
             f"{sql_string(invocation)}")
    started = said = time.monotonic()
    pause = 0.05  # then less often: each look is a SQL query, ~5 ms of restate-server's CPU
    while True:
        rows = lab.admin.sql(query)
        status = rows[0]["status"] if rows else "pending"
        # The first line of the last failure: the error, without the traceback below it.
        failure = ((rows[0].get("last_failure") or "") if rows else "").split("\n", 1)[0]
        if status == "completed":
            return lab.ingress.attach(invocation)
        waited = time.monotonic() - started
        if (failure and SCRIPTED not in failure and not _cut_off(failure)) \
                or status == "paused" or waited > limit:
            cancel = cancel_if_stuck and not failure and status != "paused"
            # Nothing keeps retrying, or waiting, in the background.
            (lab.admin.cancel if cancel else lab.admin.kill)(invocation)
            raise NotYet(f"{what} to end",
                         f"it failed, and Restate retried it: {failure}" if failure else
                         f"it was still {status} after {limit:g} s; the check "
                         f"{'cancelled' if cancel else 'killed'} it",
                         _fix(failure) if failure or not stuck_hint else stuck_hint)
        if time.monotonic() - said >= PROGRESS_SECONDS:
            said = time.monotonic()
            print(f"… {what} is {status} after {waited:.0f} s", flush=True)
        time.sleep(pause)
        pause = min(0.25, pause * 1.25)


def _cut_off(failure: str) -> bool:
    """Whether ``failure`` is an attempt that a check's own crash cut off, lately."""
    return (time.monotonic() - _last_crash[0] < ANSWER_SECONDS
            and any(words in failure.lower() for words in CUT_OFF))


def crash(lab: Lab, part: str, moment: str) -> None:
    """Crash ``part`` of the lab (HOST: the service host of your code restarted, so its
    handlers in flight are cut off and Restate replays them; SERVER: restate-server SIGKILLed
    and started again on its data) and say so on the learner's screen. A Restate the lab does
    not run is left alone."""
    if part == SERVER and lab.external:
        return
    print(f"⚡ the check crashes {part} {moment}", flush=True)
    _last_crash[0] = time.monotonic()
    if part == HOST:  # the host serving your code (lab.serve's), the lab's own if none
        lab.service_hosts[-1].restart(at_once=True)
    else:
        lab.server.restart()
    _last_crash[0] = time.monotonic()


def eventually(condition: Callable[[], Any], within: float) -> bool:
    """Whether ``condition`` holds within ``within`` seconds (polled)."""
    try:
        wait_until(condition, within, "a condition of the check", interval=0.02)
    except LabError:
        return False
    return True


def journal_entries(lab: Lab, invocation: str) -> list[dict[str, Any]]:
    """The journal of ``invocation``: its entries' types and names, in order."""
    return lab.admin.sql("SELECT entry_type, name FROM sys_journal WHERE id = "
                         f"{sql_string(invocation)} ORDER BY index")


def journal_values(lab: Lab, invocation: str) -> list[str]:
    """Every value in the journal of ``invocation`` (input, step results, state writes,
    output: arrays of bytes in ``sys_journal.entry_json``), decoded as text."""
    values: list[str] = []

    def walk(item: Any) -> None:
        if isinstance(item, list) and item and all(isinstance(n, int) for n in item):
            values.append(bytes(item).decode("utf-8", "replace"))
        elif isinstance(item, (list, dict)):
            for inner in item.values() if isinstance(item, dict) else item:
                walk(inner)

    for row in lab.admin.sql(f"SELECT entry_json FROM sys_journal WHERE id = "
                             f"{sql_string(invocation)}"):
        walk(json.loads(row["entry_json"]))
    return values


def stored_state(lab: Lab, service: str, key: str) -> dict[str, str]:
    """What Restate keeps in the state of ``service``/``key``: name → value (JSON text)."""
    return {row["key"]: row["value_utf8"] for row in lab.admin.sql(
        f"SELECT key, value_utf8 FROM state WHERE service_name = {sql_string(service)} "
        f"AND service_key = {sql_string(key)}")}


def end_unfinished(lab: Lab, where: str) -> None:
    """Kill every invocation that matches ``where`` (SQL on sys_invocation) and has not ended:
    whatever the answer did, nothing it started keeps running after the check."""
    for _ in range(20):  # a chain may schedule one more as it dies
        ids = [row["id"] for row in lab.admin.sql(
            f"SELECT id FROM sys_invocation WHERE status <> 'completed' AND ({where})")]
        if not ids:
            return
        for invocation in ids:
            lab.admin.kill(invocation)
        time.sleep(0.2)


def _fix(failure: str) -> str:
    if not failure:
        return ("a handler that never returns waits for something that never comes: look for a "
                "loop that does not end, or an await that nothing completes")
    return ("Restate retries every exception but one, until the handler succeeds. A bug: fix it "
            "and run the cell again (the new deployment replaces it). A handler that means to "
            "fail for good (reject, give up) raises restate.TerminalError(...): that one is "
            "not retried.")


def check(exercise: str) -> Callable[[Callable[..., None]], Callable[..., CheckResult]]:
    """Turn a function that raises NotYet into one that returns a CheckResult. A call that
    fails on the way (not served yet, an error answer, no answer) is a "not yet" too."""

    def wrap(run: Callable[..., None]) -> Callable[..., CheckResult]:
        @functools.wraps(run)
        def checked(lab: Lab, *args: Any) -> CheckResult:
            try:
                before = _running_of_yours(lab)
            except LabError:
                before = set()  # the lab is not up: the check says so below
            try:
                run(lab, *args)
            except NotYet as not_yet:
                return CheckResult(exercise, False, not_yet.expected, not_yet.happened,
                                   not_yet.hint)
            except IngressError as error:
                service = error.target.split("/", 1)[0]
                hint = ("if Restate does not know the service, run the cell that defines and "
                        "serves it (lab.serve) first; else logbook.show() and "
                        f"views.invocations(lab.admin, service={service!r}) show what your "
                        "handler did")
                return CheckResult(exercise, False, "every call of the check to succeed",
                                   f"{error.target} answered HTTP {error.status}: {error.message}",
                                   hint)
            except LabError as error:
                return CheckResult(exercise, False, "an answer from your handler", str(error),
                                   "a handler that raises is retried by Restate, one that never "
                                   "returns never answers: logbook.show() shows its errors; fix "
                                   "it and run its cell again (a new deployment replaces it)")
            finally:
                _end_what_it_started(lab, before)
            return CheckResult(exercise, True)

        return checked

    return wrap


def _yours(lab: Lab) -> str:
    """SQL on sys_invocation: an invocation of a service the lab does not bring (yours)."""
    own = ", ".join(sql_string(service.name) for service in lab.services) or "''"
    return f"target_service_name NOT IN ({own})"


def _running_of_yours(lab: Lab) -> set[str]:
    """Invocations of your services that have not ended."""
    return {row["id"] for row in lab.admin.sql(
        f"SELECT id FROM sys_invocation WHERE status <> 'completed' AND {_yours(lab)}")}


def _end_what_it_started(lab: Lab, before: set[str]) -> None:
    """Kill what the check started and is still running, whatever the answer did (a workflow
    waiting on a promise nothing completes, a chain of delayed calls)."""
    earlier = ", ".join(sql_string(invocation) for invocation in before) or "''"
    try:
        end_unfinished(lab, f"{_yours(lab)} AND id NOT IN ({earlier})")
    except LabError:
        pass  # the lab went down meanwhile: nothing runs there any more


def show(solution: ModuleType) -> None:
    """Print a solution's code (the reveal)."""
    print(inspect.getsource(solution))
