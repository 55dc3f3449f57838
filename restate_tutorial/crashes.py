"""Crash-test a handler at every step of its journal.

A scenario is run once as it is, to count the entries of its journal; then once per entry
*k* with a crash as soon as Restate's records hold entry *k* — restate-server SIGKILLed, or
(the second mode) the service host crashed — and the scenario's check runs after each run:
"every effect once". A side effect outside ``ctx.run`` (done again by the replay) or a step
whose key changes between attempts breaks it at some *k*; the report names which, with that
run's journal. In a test (the plugin's ``restate_crash_test`` fixture does this)::

    def start(run: str) -> str:                       # one run, with ids of its own
        return lab.ingress.send("Orders", "Place", {"order": run})

    def check(run: str, invocation_id: str) -> None:  # raises AssertionError if broken
        assert payments.count(order=run) == 1

    crash_test(lab, start, check).assert_safe()

The crash lands when Restate's records first show entry *k*: they are polled every few ms, and
meanwhile every message a handler sends to Restate is held ``PACE_SECONDS``, so the handler
is rarely further by then. Each run records where it landed; when a crash lands further than
aimed, the next run aims after it, so no two runs of a mode crash at the same point.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from . import views
from .lab import Lab, wait_until
from .lab.admin import sql_string

MODES: dict[str, Callable[[Lab], object]] = {
    "restate-server SIGKILL": lambda lab: lab.server.restart(),
    "service host crash": lambda lab: [host.restart() for host in lab.service_hosts],
}
#: While a crash test runs, each message a handler sends to Restate is held this long, so that
#: the crash lands right after the entry it aims at, not a few steps later.
PACE_SECONDS = 0.02


@dataclass
class CrashRun:
    mode: str
    after_entry: int  # the crash was due once the journal held this entry (0: the input)
    entries_at_crash: int  # how many entries the journal held when it landed
    invocation_id: str
    failure: str | None = None  # the check's AssertionError, if it broke
    journal: str = ""  # the run's journal, kept when it broke

    def __str__(self) -> str:
        where = (f"{self.mode} after entry {self.after_entry} (the journal held "
                 f"{self.entries_at_crash} entries when it landed)")
        if self.failure is None:
            return f"ok      {where}"
        return f"BROKEN  {where}: {self.failure}\n{self.journal}"


@dataclass
class CrashReport:
    entries: int  # of the run without a crash
    runs: list[CrashRun] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def broken(self) -> list[CrashRun]:
        return [run for run in self.runs if run.failure is not None]

    def __str__(self) -> str:
        landed = sorted({r.entries_at_crash for r in self.runs})
        head = (f"{len(self.runs)} crash runs ({self.entries} journal entries, "
                f"{len({r.mode for r in self.runs})} modes; crashes landed with "
                f"{', '.join(map(str, landed))} entries in the journal) in {self.seconds:.1f} s:"
                f" {len(self.broken)} broken")
        return "\n".join([head, *(str(run) for run in self.broken or self.runs)])

    def assert_safe(self) -> None:
        """Fail (AssertionError) naming every crash point that broke the check."""
        __tracebackhide__ = True
        if self.broken:
            raise AssertionError(str(self))


def crash_test(lab: Lab, start: Callable[[str], str], check: Callable[[str, str], None],
               modes: Sequence[str] = tuple(MODES), timeout: float = 60.0,
               most_entries: int | None = None) -> CrashReport:
    """Run ``start(run)`` (it returns the invocation id of one run of the scenario) without a
    crash, then once per journal entry and mode with a crash there; ``check(run, invocation_id)``
    after each run, once the invocation has ended. ``most_entries`` crashes after the first
    ones only (a smoke run)."""
    began = time.monotonic()
    with lab.paced(PACE_SECONDS):
        return _crash_runs(lab, start, check, modes, timeout, began, most_entries)


def _crash_runs(lab: Lab, start: Callable[[str], str], check: Callable[[str, str], None],
                modes: Sequence[str], timeout: float, began: float,
                most_entries: int | None) -> CrashReport:
    baseline = start("no crash")
    lab.admin.wait_until_ended(baseline, timeout=timeout)
    check("no crash", baseline)  # a check that fails without a crash is a bug of the test
    entries = _journal_length(lab, baseline)
    report = CrashReport(entries)
    for mode in modes:
        # After the last entry the run has ended: nothing to crash. A crash that lands later
        # than aimed (the handler was faster) counts there: the next aim is after it, so each
        # run crashes at an entry of its own.
        k, last = 1, min(entries, (most_entries or entries) + 1)
        while k < last:
            run = f"{mode.split()[0]}-{k}"
            invocation = start(run)
            at_crash = _wait_for_entry(lab, invocation, k, timeout)
            MODES[mode](lab)
            lab.admin.wait_until_ended(invocation, timeout=timeout)
            crashed = CrashRun(mode, k, at_crash, invocation)
            try:
                check(run, invocation)
            except AssertionError as broken:
                crashed.failure = str(broken) or "the check failed"
                crashed.journal = str(views.journal(lab.admin, invocation))
            report.runs.append(crashed)
            k = max(k + 1, at_crash)
    report.seconds = time.monotonic() - began
    return report


def _journal_length(lab: Lab, invocation: str) -> int:
    return int(lab.admin.sql(f"SELECT count(*) AS n FROM sys_journal WHERE id = "
                             f"{sql_string(invocation)}")[0]["n"])


def _wait_for_entry(lab: Lab, invocation: str, k: int, timeout: float) -> int:
    """Poll until the journal holds entry ``k``; returns its length at that moment."""
    length = [0]

    def journaled() -> bool:
        length[0] = _journal_length(lab, invocation)
        return length[0] > k

    wait_until(journaled, timeout, f"entry {k} in the journal of {invocation}", interval=0.003,
               slowest=0.003)  # the crash lands right after entry k
    return length[0]
