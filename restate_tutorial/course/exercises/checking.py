"""What a check says: passed, or what was expected, what happened, and a hint.

How the checks work (every exercise, Part II's too, follows this):

- A check drives a scenario against the running lab and proves the exercise's promise on the
  simulated systems' ledgers and on Restate's records; it returns a :class:`CheckResult` and
  never raises.
- It must say "not yet" to the unchanged starter **and** to the plausible wrong answers: choose
  the scenario that exposes each one (a second, separate request where a key derived from the
  request would merge two; a cancel or a terminal failure during the very step whose
  compensation is pushed; the first value where only a ratio was compared; the state right
  after the first request, not only after the last). ``tests/course/test_exercises.py`` keeps
  those wrong answers as test cases, and the solution must pass.
- It answers in seconds: the learner's handler is called through :func:`answer`, which watches
  Restate's record of the invocation. A handler that fails and is retried is reported at once
  with its failure and the fix (a plain exception where a ``TerminalError`` was meant is named
  as such), and the invocation is killed, so nothing keeps running in the background. A slow
  answer (durable sleeps) prints a progress line every few seconds; none waits more than
  ``ANSWER_SECONDS``.
"""

from __future__ import annotations

import functools
import html
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from ...lab import IngressError, Lab, LabError
from ...lab.admin import sql_string

#: The longest a check waits for one answer of your handler (one that is being retried is
#: reported at once); while it waits, it says so every PROGRESS_SECONDS.
ANSWER_SECONDS = 60.0
PROGRESS_SECONDS = 5.0
#: Failures the checks script themselves (the simulated systems' transient errors).
SCRIPTED = "scripted"


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
    while True:
        rows = lab.admin.sql(query)
        status = rows[0]["status"] if rows else "pending"
        # The first line of the last failure: the error, without the traceback below it.
        failure = ((rows[0].get("last_failure") or "") if rows else "").split("\n", 1)[0]
        if status == "completed":
            return lab.ingress.attach(invocation)
        waited = time.monotonic() - started
        if (failure and SCRIPTED not in failure) or status == "paused" \
                or waited > limit:
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
        time.sleep(0.1)


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
                run(lab, *args)
            except NotYet as not_yet:
                return CheckResult(exercise, False, not_yet.expected, not_yet.happened,
                                   not_yet.hint)
            except IngressError as error:
                hint = ("if Restate does not know the service, run the cell that defines and "
                        "serves it (lab.serve) first; else logbook.show() and "
                        "views.invocations(lab.admin, ...) show what your handler did")
                return CheckResult(exercise, False, "every call of the check to succeed",
                                   f"{error.target} answered HTTP {error.status}: {error.message}",
                                   hint)
            except LabError as error:
                return CheckResult(exercise, False, "an answer from your handler", str(error),
                                   "a handler that raises is retried by Restate, one that never "
                                   "returns never answers: logbook.show() shows its errors; fix "
                                   "it and run its cell again (a new deployment replaces it)")
            return CheckResult(exercise, True)

        return checked

    return wrap


def show(solution: ModuleType) -> None:
    """Print a solution's code (the reveal)."""
    print(inspect.getsource(solution))
