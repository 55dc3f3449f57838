"""What a check says: passed, or what was expected, what happened, and a hint."""

from __future__ import annotations

import functools
import html
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from ...lab import IngressError, Lab, LabError

#: How long a check waits for one answer of your handler. A handler that raises is retried by
#: Restate, one that never returns never answers: either way the check gives up after this.
ANSWER_SECONDS = 120.0


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
