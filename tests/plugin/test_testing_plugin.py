"""restate_tutorial.testing, the pytest plugin, used the way a user would: a test file of their
own, run by pytest in a subprocess, in each harness mode."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

NON_DETERMINISTIC = '''
import itertools
from datetime import timedelta

import restate
from restate import Context, RunOptions

executions = itertools.count()  # a value read outside ctx.run: it differs on a replay
service = restate.Service("Moody")


@service.handler()
async def decide(ctx: Context, request: dict) -> str:
    if next(executions) == 0:  # the first execution takes one branch, any replay the other
        return await ctx.run_typed("pick", lambda: "a step", RunOptions())
    await ctx.sleep(timedelta(milliseconds=1))
    return "a sleep"


def test_decides(restate_lab):
    restate_lab.serve(service)
    assert restate_lab.ingress.call("Moody", "decide", {}) == "a step"
'''

RAISES = '''
import restate
from restate import Context

service = restate.Service("Broken")


@service.handler()
async def work(ctx: Context, request: dict) -> str:
    raise RuntimeError("a bug in the handler")


def test_works(restate_lab):
    restate_lab.serve(service)
    assert restate_lab.ingress.call("Broken", "work", {}, timeout=20) == "done"
'''


def test_a_non_deterministic_handler_passes_a_plain_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(NON_DETERMINISTIC)
    pytester.runpytest_subprocess("-q").assert_outcomes(passed=1)


def test_always_replay_catches_it_with_restates_journal_mismatch(
        pytester: pytest.Pytester) -> None:
    pytester.makepyfile(NON_DETERMINISTIC)
    run = pytester.runpytest_subprocess("-q", "--restate-always-replay", "--restate-no-retries")
    run.assert_outcomes(failed=1)
    output = run.stdout.str()
    assert "IngressError" in output and "mismatch" in output.lower(), output[-3000:]


def test_no_retries_fails_fast_with_the_handlers_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(RAISES)
    run = pytester.runpytest_subprocess("-q", "--restate-no-retries")
    run.assert_outcomes(failed=1)
    output = run.stdout.str()
    # The handler's own error, at once (without the mode: retried until the 20 s timeout).
    assert "HTTP 500: RuntimeError('a bug in the handler')" in output, output[-3000:]


LEAVES_ONE_RUNNING = '''
import asyncio

import restate
from restate import Context

service = restate.Service("Forever")


@service.handler()
async def wait(ctx: Context, request: dict) -> None:
    await asyncio.sleep(3600)  # never returns


def test_leaves_an_invocation_running(restate_lab):
    restate_lab.serve(service)
    restate_lab.ingress.send("Forever", "wait", {})


def test_waits_for_one_that_never_answers(restate_lab):
    restate_lab.serve(service)
    restate_lab.ingress.call("Forever", "wait", {}, timeout=2)
'''


def test_an_invocation_left_running_does_not_hang_the_session(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(LEAVES_ONE_RUNNING)
    run = pytester.runpytest_subprocess("-q", timeout=120)  # the session ends: the lab stops
    run.assert_outcomes(passed=1, failed=1)
    assert "LabError: No answer from /Forever/wait within 2 s" in run.stdout.str()


def test_a_lab_that_cannot_start_says_the_fix_in_one_line(pytester: pytest.Pytester,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESTATE_SERVER_BIN", str(pytester.path / "no-such-binary"))
    pytester.makepyfile("def test_x(restate_lab):\n    pass\n")
    run = pytester.runpytest_subprocess("-q")
    run.assert_outcomes(errors=1)
    assert "is not an executable" in run.stdout.str() and "RESTATE_SERVER_BIN" in run.stdout.str()
