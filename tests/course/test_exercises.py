"""The "Your turn" exercises: each starter cell, run as the notebook has it, serves a service
whose check says "not yet" with what was expected, what happened and a hint; each solution in
restate_tutorial.course.solutions passes its check."""

from __future__ import annotations

import inspect
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import nbformat
import pytest
import restate
from restate import ObjectContext

from restate_tutorial.course import exercises
from restate_tutorial.course.exercises import CheckResult, checking
from restate_tutorial.course.solutions import (
    daily_limit,
    delivery_tracker,
    early_updates,
    email_tool,
    escalation,
    expense_token,
    first_three,
    hotel_saga,
    limited_watch,
    loyalty_points,
    paced_search,
    patient_feed,
    refund_once,
    rotating_codec,
    snooze,
    span_once,
    spend_cap,
    strict_feed,
    stuck_payments,
    withdraw_request,
)
from restate_tutorial.lab import Lab, wait_until
from restate_tutorial.patterns import checkout, event_transactions
from restate_tutorial.simulated import travel

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"

EXERCISES: dict[str, tuple[Callable[[Lab], CheckResult], ModuleType, str]] = {
    "1.1": (exercises.check_loyalty_points, loyalty_points, "loyalty_bonus"),
    "1.2": (exercises.check_hotel_saga, hotel_saga, "trip_with_hotel"),
    "2.1": (exercises.check_backoff, patient_feed, "patient_user_feed"),
    "2.2": (exercises.check_give_up, strict_feed, "strict_user_feed"),
    "3.1": (exercises.check_delivered, delivery_tracker, "delivery_tracker"),
    "3.2": (exercises.check_early_updates, early_updates, "early_bird_tracker"),
    "7.1": (exercises.check_withdraw, withdraw_request, "trip_request"),
    "7.2": (exercises.check_escalation, escalation, "escalating_approval"),
    "8.1": (exercises.check_snooze, snooze, "reminder"),
    "8.2": (exercises.check_give_up_watch, limited_watch, "limited_watch"),
    "9.1": (exercises.check_first_three, first_three, "quick_search"),
    "9.2": (exercises.check_paced_search, paced_search, "user_search"),
    "10.1": (exercises.check_email_tool, email_tool, "itinerary_agent"),
    "10.2": (exercises.check_spend_cap, spend_cap, "frugal_agent"),
    "11.1": (exercises.check_refund, refund_once, "refunds"),
    "11.2": (exercises.check_daily_limit, daily_limit, "limited_accounts"),
    "12.1": (exercises.check_span_once, span_once, "shipping"),
    "12.2": (exercises.check_stuck_query, stuck_payments, "STUCK_PAYMENTS"),  # a query
    "13.1": (exercises.check_decision_token, expense_token, "expense_claim"),
    "13.2": (exercises.check_key_rotation, rotating_codec, "receipt_vault"),
}


def _serve(lab: Lab, number: str, namespace: dict[str, Any]) -> None:
    """Serve the exercise's service of ``namespace`` (13.2: with its codec; 12.2 is a query)."""
    service = namespace[EXERCISES[number][2]]
    if isinstance(service, str):
        return
    if "ClaimCodec" in namespace:
        lab.serve(service, journal_value_codec=namespace["ClaimCodec"]())
    else:
        lab.serve(service)


def _check(lab: Lab, number: str, namespace: dict[str, Any]) -> CheckResult:
    """Run the exercise's check as its notebook cell does (13.2: with the codec and its ring)."""
    if "ClaimCodec" in namespace:
        return exercises.check_key_rotation(lab, namespace["ClaimCodec"](), namespace["ring"])
    if number == "12.2":
        return exercises.check_stuck_query(lab, namespace["STUCK_PAYMENTS"])
    return EXERCISES[number][0](lab)


@pytest.fixture(scope="module")
def traced_lab() -> Iterator[Lab]:
    """A lab that collects traces (notebook 12's): 12.1's check reads its spans."""
    with Lab([checkout.checkout], traces=True) as lab:
        yield lab


def _lab_for(number: str, lab: Lab, request: pytest.FixtureRequest) -> Lab:
    return request.getfixturevalue("traced_lab") if number == "12.1" else lab

pytestmark = pytest.mark.usefixtures("fresh_ledgers")


def starters() -> dict[str, str]:
    """The starter cells of the notebooks, by exercise number."""
    found = {}
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if "exercise-starter" in cell.metadata.get("tags", []):
                found[cell.metadata["exercise"]] = cell.source
    return found


def test_every_exercise_has_a_starter_cell_and_a_check() -> None:
    assert sorted(starters()) == sorted(EXERCISES)
    for number, source in starters().items():
        assert "# TODO" in source and ("lab.serve(" in source or number == "12.2"), number


def test_the_set_up_cell_imports_what_checks_solutions_and_hints_use() -> None:
    """After a kernel restart a learner runs the set-up cell, then any exercise's check: every
    name that checks, solutions and hints use is defined by then; solutions are collapsed."""
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        cells = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
        if not any("exercises.check_" in c.source for c in cells):
            continue
        setup = cells[0].source
        for name in ("exercises", "logbook", "views", "lab"):
            assert re.search(rf"\bimport .*\b{name}\b|^{name} = ", setup, re.M), (path, name)
        for cell in cells:
            if "exercises.show(" in cell.source:
                assert cell.metadata["jupyter"] == {"source_hidden": True,
                                                    "outputs_hidden": True}, path


@pytest.mark.parametrize("number", list(EXERCISES))
def test_the_starter_runs_and_its_check_says_not_yet_with_a_hint(
        lab: Lab, number: str, request: pytest.FixtureRequest) -> None:
    lab = _lab_for(number, lab, request)
    namespace: dict[str, Any] = {"lab": lab, "travel": travel,
                                 "event_transactions": event_transactions}
    exec(compile(starters()[number], f"starter {number}", "exec"), namespace)  # noqa: S102
    result = _check(lab, number, namespace)
    assert not result.passed
    assert result.expected and result.happened and result.hint
    shown = str(result)
    assert shown.startswith("✗ Exercise") and "AssertionError" not in shown
    assert "hint:" in shown and "<table>" in result._repr_html_()


@pytest.mark.parametrize("number", list(EXERCISES))
def test_the_solution_passes_its_check(lab: Lab, number: str,
                                       request: pytest.FixtureRequest) -> None:
    lab = _lab_for(number, lab, request)
    _serve(lab, number, vars(EXERCISES[number][1]))
    result = _check(lab, number, vars(EXERCISES[number][1]))
    assert result.passed, str(result)
    assert str(result).startswith("✓ Exercise")


def test_a_check_of_a_service_never_served_says_so() -> None:
    with Lab([]) as empty:
        result = exercises.check_delivered(empty)
    assert not result.passed and "HTTP 404" in result.happened
    assert "lab.serve" in result.hint


def test_a_handler_that_raises_is_reported_at_once_and_killed(lab: Lab) -> None:
    """A plain exception is retried by Restate forever: the check says so at its first retry,
    names TerminalError, and kills the invocation; the lab keeps serving, and serving a fixed
    version (running the cell again) replaces the broken one."""
    broken = restate.VirtualObject("DeliveryTracker")

    @broken.handler(name="RegisterPackage")
    async def register(ctx: ObjectContext, request: dict) -> None:
        raise RuntimeError("a learner's bug")  # not terminal: Restate would retry it, forever

    lab.serve(broken)
    result = exercises.check_delivered(lab)
    assert not result.passed and "Restate retried it" in result.happened
    assert "RuntimeError(\"a learner's bug\")" in result.happened and "TerminalError" in result.hint
    running = lab.admin.sql("SELECT id FROM sys_invocation WHERE target_service_name = "
                            "'DeliveryTracker' AND status <> 'completed'")
    assert running == []  # killed: nothing keeps retrying in the background
    assert lab.ingress.call("Greeter", "greet", {"name": "still", "delay_seconds": 0})
    lab.serve(delivery_tracker.delivery_tracker)
    assert exercises.check_delivered(lab).passed


def test_a_handler_that_never_answers_is_given_up_on_and_killed(
        lab: Lab, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(checking, "ANSWER_SECONDS", 2.0)
    monkeypatch.setattr(checking, "PROGRESS_SECONDS", 0.5)
    stuck = restate.VirtualObject("DeliveryTracker")

    @stuck.handler(name="RegisterPackage")
    async def register(ctx: ObjectContext, request: dict) -> None:
        _, never = ctx.awakeable(type_hint=str)
        await never  # nothing resolves it

    lab.serve(stuck)
    result = exercises.check_delivered(lab)
    assert not result.passed and "after 2 s; the check killed it" in result.happened
    assert "DeliveryTracker/RegisterPackage is " in capsys.readouterr().out  # progress shown
    lab.serve(delivery_tracker.delivery_tracker)
    assert exercises.check_delivered(lab).passed


def _replace(*old_new: str) -> Callable[[str], str]:
    """An edit: each ``old`` text replaced by the ``new`` after it (old, new, old, new…)."""
    def edit(source: str) -> str:
        for old, new in zip(old_new[::2], old_new[1::2], strict=True):
            assert old in source, old
            source = source.replace(old, new)
        return source
    return edit


REFUND_TOKEN = '''        first = conn.execute("INSERT INTO refunds (refund_id) VALUES (%s)"
                             " ON CONFLICT (refund_id) DO NOTHING RETURNING 1",
                             (refund["refund_id"],)).fetchone()
        if first is None:  # refunded before: a retry after a crash, or the client again
            return
'''
LIMIT_LOCK = ('        conn.execute("SELECT 1 FROM accounts WHERE id = %s FOR UPDATE",'
              ' (t["from"],))\n')
CHECK_TOKEN = """    if decision.get("token") != await ctx.get("token", type_hint=str):
        raise TerminalError(f"claim {ctx.key()}: only its manager can decide", 403)
"""
WAIT_FOR_TOKEN = ("    await fan_out.wait_for_token(ctx, f\"search-{request['user']}\", "
                  "per_second=1)\n")

# Plausible wrong answers, each made from the solution by one edit, and what the check's verdict
# must say about it: "not yet", for the right reason (a retried handler is reported at once).
WRONG_ANSWERS: dict[str, tuple[str, Callable[[str], str], str | tuple[str, ...]]] = {
    "1.1 a request id derived from the request": ("1.1", _replace(
        'request_id = await unique_key(ctx, "request id")',
        'request_id = f"{request[\'member\']}-{request[\'points\']}"'),
        "two separate awards"),
    "1.1 a random request id outside any journaled step": ("1.1", _replace(
        'request_id = await unique_key(ctx, "request id")', "request_id = str(uuid.uuid4())"),
        "a balance of 200 points"),
    "1.1 a new request id inside the add-points step": ("1.1", _replace(
        """    request_id = await unique_key(ctx, "request id")
    return await ctx.run_typed("add points", travel.loyalty.add_points, RunOptions(),
                               request["member"], request["points"], request_id)""",
        """    return await ctx.run_typed("add points", lambda: travel.loyalty.add_points(
        request["member"], request["points"], str(uuid.uuid4())))"""),
        "a balance of 200 points"),
    "1.2 the hotel's cancellation never pushed": ("1.2", _replace(
        "        compensations.append(lambda: ctx.service_call(hotel_service.cancel, hotel_id))\n",
        ""),
        "the undo in reverse order"),
    "1.2 the hotel's compensation pushed before its reservation": ("1.2", _replace(
        """        hotel_id = await ctx.service_call(hotel_service.reserve, hotel)
        compensations.append(lambda: ctx.service_call(hotel_service.cancel, hotel_id))""",
        """        compensations.append(lambda: ctx.service_call(hotel_service.cancel, hotel_id))
        hotel_id = await ctx.service_call(hotel_service.reserve, hotel)"""),
        "NameError"),
    "1.2 the hotel never confirmed": ("1.2", _replace(
        ",\n                             ctx.service_call(hotel_service.confirm, hotel_id)]", "]"),
        "the hotel API saw ['reserve']"),
    "2.1 the interval doubled before the first sleep": ("2.1", _replace(
        """        await ctx.sleep(interval, name="moderation backoff")
        interval *= 2""", """        interval *= 2
        await ctx.sleep(interval, name="moderation backoff")"""),
        "the first sleep as long as the interval"),
    "2.1 every sleep twice the interval": ("2.1", _replace(
        "await ctx.sleep(interval,", "await ctx.sleep(interval * 2,"),
        "the first sleep as long as the interval"),
    "2.1 a sleep of the process instead of a durable one": ("2.1", _replace(
        "import restate\n", "import asyncio\n\nimport restate\n",
        'await ctx.sleep(interval, name="moderation backoff")',
        "await asyncio.sleep(interval.total_seconds())"),
        "two durable sleeps"),
    "2.2 a ValueError instead of a TerminalError": ("2.2", _replace(
        "raise TerminalError(", "raise ValueError("),
        "ValueError"),
    "2.2 giving up one check late": ("2.2", _replace(
        "if checks == MAX_CHECKS:", "if checks > MAX_CHECKS:"),
        "it succeeded after 4 checks"),
    "2.2 the checks counted in memory": ("2.2", _replace(
        "strict_user_feed = restate", "CHECKS: dict = {}\nstrict_user_feed = restate",
        "    checks = 0\n", "",
        "        checks += 1  #",
        "        CHECKS[user_id] = checks = CHECKS.get(user_id, 0) + 1  #"),
        "exactly 3 moderation checks"),
    "3.1 no flag until the first update": ("3.1", _replace(
        ',\n                             "delivered": False}', "}"),
        "right after the registration"),
    "3.1 delivered once anywhere but the start": ("3.1", _replace(
        'update["location"] == info["finalDestination"]', 'len(info["locations"]) > 0'),
        "while on the way"),
    "3.1 the locations overwritten, not appended": ("3.1", _replace(
        '    info["locations"].append(update)', '    info["locations"] = [update]'),
        "both locations kept"),
    "3.2 early updates kept but never applied": ("3.2", _replace(
        '"locations": early}', '"locations": []}'),
        "'locations': []"),
    "3.2 early updates applied newest first": ("3.2", _replace(
        '"locations": early}', '"locations": early[::-1]}'),
        "in the order they came"),
    "3.2 early updates kept in memory": ("3.2", _replace(
        "early_bird_tracker = restate", "EARLY: dict = {}\nearly_bird_tracker = restate",
        "    early = await ctx.get(EARLY_KEY, type_hint=list) or []",
        "    early = EARLY.pop(ctx.key(), [])",
        "    ctx.clear(EARLY_KEY)\n", "",
        "        ctx.set(EARLY_KEY, [*(await ctx.get(EARLY_KEY, type_hint=list) or []), update])",
        "        EARLY.setdefault(ctx.key(), []).append(update)"),
        "in the package's state"),
    "7.1 the withdrawal written to the state, the promise left open": ("7.1", _replace(
        """        await ctx.promise("decision", type_hint=dict).resolve(
            {"withdrawn": True, "reason": request["reason"]})""",
        """        ctx.set("status", "withdrawn")"""),
        "Restate retried it"),
    "7.1 a promise of its own for the withdrawal": ("7.1", _replace(
        'ctx.promise("decision", type_hint=dict).resolve(\n            {"withdrawn"',
        'ctx.promise("withdrawal", type_hint=dict).resolve(\n            {"withdrawn"'),
        "still running after 10 s"),
    "7.1 a withdrawal taken for a rejection": ("7.1", _replace(
        """{"withdrawn": True, "reason": request["reason"]}""",
        """{"approved": False, "by": "the traveller", "reason": request["reason"]}"""),
        "HTTP 403"),
    "7.1 no status for a withdrawn trip": ("7.1", _replace(
        """        ctx.set("status", "withdrawn")\n""", ""),
        "'waiting'"),
    "7.2 the second wait has no timer": ("7.2", _replace(
        """        winner, value = await restate.select(decision=decision.value(),
                                             timeout=ctx.sleep(timeout))""",
        """        winner, value = "decision", await decision.value()"""),
        "still running after 10 s"),
    "7.2 the first approver asked again": ("7.2", _replace(
        """ask(ctx, request["escalate_to"], "escalated")""",
        """ask(ctx, request["approver"], "escalated")"""),
        "(2, 0)"),
    "7.2 both approvers asked at once": ("7.2", lambda source: _replace(
        """    await ask(ctx, request["approver"], "first")\n""",
        """    await ask(ctx, request["approver"], "first")
    await ask(ctx, request["escalate_to"], "escalated")\n""")(source).replace(
        """        await ask(ctx, request["escalate_to"], "escalated")
        winner""", """        winner"""),
        "the second approver never asked"),
    "7.2 a promise of its own for the second approver": ("7.2", _replace(
        """        winner, value = await restate.select(decision=decision.value(),""",
        """        winner, value = await restate.select(
            decision=ctx.promise("escalated", type_hint=dict).value(),"""),
        "approved by the second approver"),
    "7.1 any decision with a reason taken for a withdrawal": ("7.1", _replace(
        'if decision.get("withdrawn"):', 'if "reason" in decision:'),
        "still a rejection"),
    "7.2 the escalation sent outside a journaled step": ("7.2", _replace(
        """        await ask(ctx, request["escalate_to"], "escalated")""",
        """        mailer.notify(request["escalate_to"], f"Approve trip {ctx.key()}?",
                      "Decide with EscalatingApproval/Decide.", f"{ctx.key()}-escalated")"""),
        "sent once"),
    "7.2 the second wait a timer of the process": ("7.2", _replace(
        "import restate\n", "import asyncio\n\nimport restate\n",
        """        winner, value = await restate.select(decision=decision.value(),
                                             timeout=ctx.sleep(timeout))""",
        """        await asyncio.sleep(timeout.total_seconds())
        value = await decision.peek()
        winner = "decision" if value is not None else 'timeout'"""),
        "two durable timers"),
    "7.2 the second wait a durable timer, but not raced with the promise": ("7.2", _replace(
        """        winner, value = await restate.select(decision=decision.value(),
                                             timeout=ctx.sleep(timeout))""",
        """        await ctx.sleep(timeout)
        value = await decision.peek()
        winner = "decision" if value is not None else 'timeout'"""),
        "as soon as the second approver decided"),
    "8.1 a new reminder, the old one left pending": ("8.1", _replace(
        "    ctx.cancel_invocation(pending)\n", ""),
        "reminders pending"),
    "8.1 the new reminder's id not kept": ("8.1", _replace(
        '    return await schedule(ctx, request["seconds"])',
        """    handle = ctx.object_send(remind, key=ctx.key(), arg=None,
                             send_delay=timedelta(seconds=request["seconds"]))
    return await handle.invocation_id()"""),
        "2 reminders pending"),
    "8.1 pending not cleared when the reminder runs": ("8.1", _replace(
        '    ctx.clear("pending")\n', ""),
        "after the reminder was sent"),
    "8.2 giving up one check late": ("8.2", _replace(
        'if checks >= watch["max_checks"]:', 'if checks > watch["max_checks"]:'),
        "4 checks"),
    "8.2 giving up, and checking on": ("8.2", _replace(
        """                            "checks.", f"{ctx.key()}-gave-up")
        return""", """                            "checks.", f"{ctx.key()}-gave-up")"""),
        "status 'gave up'"),
    "8.2 giving up before the last check": ("8.2", _replace(
        '    fare = await ctx.run_typed("check fare"',
        '    if checks >= watch["max_checks"]:\n'
        '        ctx.set("status", "gave up")\n'
        '        return\n'
        '    fare = await ctx.run_typed("check fare"'),
        "2 fares checked"),
    "8.1 cancelled through the notebook's admin API": ("8.1", _replace(
        "    ctx.cancel_invocation(pending)\n", "    lab.admin.cancel(pending)\n"),
        "a command of its journal"),
    "8.2 the checks counted in memory": ("8.2", _replace(
        "limited_watch = restate", "CHECKS: dict = {}\nlimited_watch = restate",
        """    checks = (await ctx.get("checks", type_hint=int) or 0) + 1
    ctx.set("checks", checks)""",
        """    CHECKS[ctx.key()] = checks = CHECKS.get(ctx.key(), 0) + 1"""),
        "2 checks"),
    "8.2 a deadline from the wall clock": ("8.2", _replace(
        "import restate\n", "import time\n\nimport restate\n",
        """    ctx.set("checks", 0)""",
        """    ctx.set("checks", 0)
    ctx.set("deadline", time.time() + watch["every_seconds"] * watch["max_checks"])""",
        """    if checks >= watch["max_checks"]:""",
        """    if time.time() >= (await ctx.get("deadline", type_hint=float) or 0):"""),
        "fares checked), status 'gave up'"),
    "8.2 the give-up message sent outside a journaled step": ("8.2", _replace(
        """        await ctx.run_typed("give up", mailer.notify, RunOptions(), watch["notify"],""",
        """        mailer.notify(watch["notify"],"""),
        "a journaled step of the check that gave up"),
    "9.1 the first three calls, not the first three answers": ("9.1", _replace(
        """    async for done in restate.as_completed(*calls.values()):
        airline = next(name for name, call in calls.items() if call is done)
        answered.append(airline)
        fares.append(await done)""",
        """    for airline, done in calls.items():
        answered.append(airline)
        fares.append(await done)"""),
        "the answer was"),
    "9.1 the slow calls left running": ("9.1", _replace(
        "            await call.cancel_invocation()", "            pass"),
        "still running"),
    "9.1 one wait for the first answers": ("9.1", _replace(
        """    async for done in restate.as_completed(*calls.values()):
        airline = next(name for name, call in calls.items() if call is done)
        answered.append(airline)
        fares.append(await done)
        if len(answered) == 3:
            break""",
        """    done_now, _ = await restate.wait_completed(*calls.values())
    for done in done_now[:3]:
        airline = next(name for name, call in calls.items() if call is done)
        answered.append(airline)
        fares.append(await done)"""),
        "['KL']"),
    "9.1 a deadline instead of the first three answers": ("9.1", _replace(
        "import restate\n", "from datetime import timedelta\n\nimport restate\n",
        """    async for done in restate.as_completed(*calls.values()):
        airline = next(name for name, call in calls.items() if call is done)
        answered.append(airline)
        fares.append(await done)
        if len(answered) == 3:
            break""",
        """    deadline = ctx.sleep(timedelta(seconds=2))
    async for done in restate.as_completed(deadline, *calls.values()):
        if done is deadline:
            break
        airline = next(name for name, call in calls.items() if call is done)
        answered.append(airline)
        fares.append(await done)"""),
        "'LH'"),
    "9.2 one bucket for everyone": ("9.2", _replace(
        'f"search-{request[\'user\']}"', '"searches"'),
        "Bob's search"),
    "9.2 one bucket per route": ("9.2", _replace(
        'f"search-{request[\'user\']}"', 'f"search-{request[\'route\']}"'),
        "Bob's search"),
    "9.2 the token taken after the fan-out": ("9.2", _replace(
        """    await fan_out.wait_for_token(ctx, f"search-{request['user']}", per_second=1)
    calls = [ctx.service_call(fan_out.quote_with_permit,
                              arg={"airline": airline, "route": request["route"]})
             for airline in quotes.AIRLINES]
""", """    calls = [ctx.service_call(fan_out.quote_with_permit,
                              arg={"airline": airline, "route": request["route"]})
             for airline in quotes.AIRLINES]
    await fan_out.wait_for_token(ctx, f"search-{request['user']}", per_second=1)
"""),
        "1 s apart"),
    "9.2 a burst of three allowed": ("9.2", _replace(
        "per_second=1)", "per_second=1, burst=3)"),
        "1 s apart"),
    "9.2 the last search's time kept in memory": ("9.2", _replace(
        "import restate\n", "import asyncio\nimport time\n\nimport restate\n",
        "user_search = restate", "LAST: dict = {}\nuser_search = restate",
        WAIT_FOR_TOKEN, """    now = time.time()
    slot = max(now, LAST.get(request["user"], 0.0) + 1)
    LAST[request["user"]] = slot
    await asyncio.sleep(slot - now)\n"""),
        "durable waits"),
    "9.2 a count per user in memory": ("9.2", _replace(
        "import restate\n", "import asyncio\n\nimport restate\n",
        "user_search = restate", "COUNT: dict = {}\nuser_search = restate",
        WAIT_FOR_TOKEN, """    COUNT[request["user"]] = count = COUNT.get(request["user"], 0) + 1
    await asyncio.sleep(count - 1)\n"""),
        "durable waits"),
    "9.2 time.sleep, which blocks every handler of the host": ("9.2", _replace(
        "import restate\n", "import time\n\nimport restate\n",
        WAIT_FOR_TOKEN, "    time.sleep(1)\n"),
        ("durable waits", "still running", "Bob's search")),  # a blocked host: any of them
    "11.1 the token looked up in a step before the credit": ("11.1", _replace(
        REFUND_TOKEN, "",
        '    await ctx.run_typed("credit", credit, RunOptions(), request)',
        '    if not await ctx.run_typed("refunded before?", refunded_before, RunOptions(),\n'
        '                               request["refund_id"]):\n'
        '        await ctx.run_typed("credit", credit, RunOptions(), request)',
        "def credit(", "def refunded_before(refund_id: str) -> bool:\n"
        "    with database.connect() as conn:\n"
        "        return bool(conn.execute('SELECT 1 FROM refunds WHERE refund_id = %s',\n"
        "                                 (refund_id,)).fetchone())\n\n\ndef credit(",
        "        conn.execute(\"UPDATE", "        conn.execute('INSERT INTO refunds VALUES (%s)'"
        " ' ON CONFLICT DO NOTHING', (refund['refund_id'],))\n        conn.execute(\"UPDATE"),
        "500 cents refunded once"),
    "11.1 a token made with ctx.uuid()": ("11.1", _replace(
        '(refund["refund_id"],)', '(refund["token"],)',
        '    await ctx.run_typed("credit", credit, RunOptions(), request)',
        '    request = {**request, "token": str(ctx.uuid())}\n'
        '    await ctx.run_typed("credit", credit, RunOptions(), request)'),
        "the same refund_id sent again"),
    "11.1 the token made of the account and the amount": ("11.1", _replace(
        '(refund["refund_id"],)', '(f"{refund[\'account\']}:{refund[\'amount_cents\']}",)'),
        "without changing it"),
    "11.1 the token written but not checked": ("11.1", _replace(
        "        if first is None:  # refunded before: a retry after a crash, or the client "
        "again\n            return\n", ""),
        "500 cents refunded once"),
    "11.2 the day's total read before the lock": ("11.2", _replace(
        LIMIT_LOCK, "", "        if spent > DAILY_LIMIT_CENTS:",
        LIMIT_LOCK + "        if spent > DAILY_LIMIT_CENTS:"),
        "one applied and one refused"),
    "11.2 the day's total read in a step before the transfer": ("11.2", _replace(
        '        spent = conn.execute("SELECT sum(amount_cents)::bigint FROM transfers"\n'
        '                             " WHERE from_account = %s AND applied_at >= current_date",\n'
        '                             (t["from"],)).fetchone()[0]\n'
        "        if spent > DAILY_LIMIT_CENTS:",
        '        if t["spent"] + t["amount_cents"] > DAILY_LIMIT_CENTS:',
        "def move(", "def spent_today(account: str) -> int:\n"
        "    with database.connect() as conn:\n"
        "        return conn.execute('SELECT coalesce(sum(amount_cents), 0)::bigint'\n"
        "                            ' FROM transfers'\n"
        "                            ' WHERE from_account = %s AND applied_at >= current_date',\n"
        "                            (account,)).fetchone()[0]\n\n\ndef move(",
        '    await ctx.run_typed("transfer", move, RunOptions(), request)',
        '    spent = await ctx.run_typed("spent today", spent_today, RunOptions(),\n'
        '                                request["from"])\n'
        '    await ctx.run_typed("transfer", move, RunOptions(), {**request, "spent": spent})'),
        "one applied and one refused"),
    "11.2 the lock taken on the account the money goes to": ("11.2", _replace(
        'FOR UPDATE", (t["from"],))', 'FOR UPDATE", (t["to"],))'),
        "one applied and one refused"),
    "11.2 refused at the limit, not over it": ("11.2", _replace(
        "if spent > DAILY_LIMIT_CENTS:", "if spent >= DAILY_LIMIT_CENTS:"),
        "without changing it"),
    "11.2 the limit checked before the token": ("11.2", _replace(
        "            return  # applied before\n", "            pass\n",
        "        if conn.execute(\"INSERT INTO transfers",
        LIMIT_LOCK
        + "        done = conn.execute(\"SELECT sum(amount_cents)::bigint FROM transfers WHERE\"\n"
        "                            \" from_account = %s AND applied_at >= current_date\",\n"
        "                            (t[\"from\"],)).fetchone()[0] or 0\n"
        "        if done + t[\"amount_cents\"] > DAILY_LIMIT_CENTS:\n"
        "            raise TerminalError(\"over the daily limit: nothing was moved\", 409)\n"
        "        if conn.execute(\"INSERT INTO transfers"),
        "answer as it did before the crash"),
    "12.1 a plain OpenTelemetry tracer": ("12.1", _replace(
        "from restate_tutorial.tracing import tracer",
        "from opentelemetry import trace\n\ntracer = trace.get_tracer('shop')"),
        "made the span again"),
    "12.1 the span made inside the step's function": ("12.1", _replace(
        '    mailer.notify("warehouse@example.com"',
        '    with tracer.start_as_current_span("notify warehouse",\n'
        '                                      attributes={"order.id": order_id}):\n'
        '        mailer.notify("warehouse@example.com"',
        '    with tracer.start_as_current_span("notify warehouse",\n'
        '                                      attributes={"order.id": request["order_id"]}):\n'
        '        await ctx.run_typed(',
        '    if True:\n'
        '        await ctx.run_typed('),
        ("made the span again", "Restate retried it", "a span named")),
    "12.1 the attribute named order_id": ("12.1", _replace(
        'attributes={"order.id": request["order_id"]}',
        'attributes={"order_id": request["order_id"]}'),
        "its attributes are"),
    "12.2 three retries or more": ("12.2", _replace(
        "status = 'paused'", "retry_count >= 3"), "found none of them"),
    "12.2 paused, of any service": ("12.2", _replace(
        "target = 'Checkout/Pay' AND status = 'paused'", "status = 'paused'"), "inventory"),
    "12.2 not completed": ("12.2", _replace(
        "status = 'paused'", "status <> 'completed'"), "later"),
    "12.2 a last failure": ("12.2", _replace(
        "status = 'paused'", "last_failure IS NOT NULL"), "found none of them"),
    "13.1 the token kept in the process": ("13.1", _replace(
        'ctx.set("token", token)', "TOKENS[ctx.key()] = token",
        'await ctx.get("token", type_hint=str)', "TOKENS.get(ctx.key())",
        "expense_claim = restate", "TOKENS: dict = {}\nexpense_claim = restate"),
        "the token in the workflow's state"),
    "13.1 the token checked only when one is sent": ("13.1", _replace(
        'if decision.get("token") != await ctx.get("token", type_hint=str):',
        'if "token" in decision and decision["token"] != await ctx.get("token", type_hint=str):'),
        "no token at all"),
    "13.1 the token checked after the promise is resolved": ("13.1", _replace(
        CHECK_TOKEN, "", '    return "decided"', CHECK_TOKEN + '    return "decided"'),
        ("still wait", "no token at all", "the manager's decision")),
    "13.1 401 for a wrong token": ("13.1", _replace("can decide\", 403)", "can decide\", 401)"),
        "HTTP 403"),
    "13.1 a missing token is a KeyError": ("13.1", _replace(
        'decision.get("token")', 'decision["token"]'),
        "Restate retried it"),
    "13.2 values opened with the current key": ("13.2", _replace(
        'ring.keys[sealed["key"]]', "ring.keys[ring.current]"),
        "Restate retried it"),
    "13.2 base64 with a nonce, not encryption": ("13.2", _replace(
        "data = AESGCM(ring.keys[key_id]).encrypt(nonce, buf, None)", "data = buf",
        """        return AESGCM(ring.keys[sealed["key"]]).decrypt(raw[:12], raw[12:], None)""",
        """        return raw[12:]"""),
        "no merchant"),
    "13.2 one nonce for every value": ("13.2", _replace(
        "ring = KeyRing()", "NONCE = os.urandom(12)\nring = KeyRing()",
        "nonce, key_id = os.urandom(12), ring.current", "nonce, key_id = NONCE, ring.current"),
        "fresh nonce"),
    "13.2 a value that does not open passed on sealed": ("13.2", _replace(
        """        return AESGCM(ring.keys[sealed["key"]]).decrypt(raw[:12], raw[12:], None)""",
        """        try:
            return AESGCM(ring.keys[ring.current]).decrypt(raw[:12], raw[12:], None)
        except Exception:
            return buf"""),
        ("Restate retried it", "the receipt")),
    "10.1 the tool written but not offered to the agent": ("10.1", _replace(
        "tools=[agent.search_fares, email_itinerary]", "tools=[agent.search_fares]"),
        "none was sent"),
    "10.1 the email sent outside a journaled step": ("10.1", _replace(
        """    message_id = await unique_key(ctx, "message id")
    await ctx.run_typed("email itinerary", mailer.notify, to=address, subject="Your trip",
                        body=f"The itinerary of conversation {ctx.key()}",
                        message_id=message_id)""",
        """    mailer.notify(to=address, subject="Your trip", message_id=str(uuid.uuid4()),
                  body=f"The itinerary of conversation {ctx.key()}")"""),
        "3 emails"),
    "10.1 a journaled step, but a new message id in every attempt": ("10.1", _replace(
        """    message_id = await unique_key(ctx, "message id")
    await ctx.run_typed(""", """    message_id = str(uuid.uuid4())
    await ctx.run_typed("""), "2 emails"),
    "10.1 sent directly, with a message id made from the address": ("10.1", _replace(
        """    message_id = await unique_key(ctx, "message id")
    await ctx.run_typed("email itinerary", mailer.notify, to=address, subject="Your trip",
                        body=f"The itinerary of conversation {ctx.key()}",
                        message_id=message_id)""",
        """    mailer.notify(to=address, subject="Your trip", message_id=f"itinerary-{address}",
                  body=f"The itinerary of conversation {ctx.key()}")"""),
        "asked 3 times"),
    "10.1 a journaled step, with a message id made from the address": ("10.1", _replace(
        'message_id = await unique_key(ctx, "message id")',
        'message_id = f"itinerary-{address}"'),
        "from two conversations"),
    "10.1 a message id from the clock": ("10.1", _replace(
        "import restate\n", "import time\n\nimport restate\n",
        'message_id = await unique_key(ctx, "message id")', "message_id = str(time.time())"),
        "2 emails"),
    "10.2 the cap checked after the model was asked": ("10.2", _replace(
        """    if spent >= CAP_TOKENS:
        return {"reply": f"This conversation has used its {CAP_TOKENS} tokens.", "tokens": 0}
    answer = await agent.converse(ctx, request, agent.travel_assistant)""",
        """    answer = await agent.converse(ctx, request, agent.travel_assistant)
    if spent >= CAP_TOKENS:
        return {"reply": f"This conversation has used its {CAP_TOKENS} tokens.", "tokens": 0}"""),
        "never after"),
    "10.2 one total for every conversation": ("10.2", _replace(
        """    spent = await ctx.get("tokens", type_hint=int) or 0""",
        """    spent = SPENT.setdefault("all", 0)""",
        """    ctx.set("tokens", spent + answer.get("tokens", 0))""",
        """    SPENT["all"] = spent + answer.get("tokens", 0)""", "CAP_TOKENS = 600",
        "CAP_TOKENS = 600\nSPENT: dict = {}"),
        "in its state in Restate"),
    "10.2 only the last turn's tokens kept": ("10.2", _replace(
        'ctx.set("tokens", spent + answer.get("tokens", 0))',
        'ctx.set("tokens", answer.get("tokens", 0))'),
        "never after"),
    "10.2 the total kept in memory, per conversation": ("10.2", _replace(
        """    spent = await ctx.get("tokens", type_hint=int) or 0""",
        """    spent = SPENT.setdefault(ctx.key(), 0)""",
        """    ctx.set("tokens", spent + answer.get("tokens", 0))""",
        """    SPENT[ctx.key()] = spent + answer.get("tokens", 0)""", "CAP_TOKENS = 600",
        "CAP_TOKENS = 600\nSPENT: dict = {}"),
        "in its state in Restate"),
    "10.2 messages counted instead of tokens": ("10.2", _replace(
        """    spent = await ctx.get("tokens", type_hint=int) or 0
    if spent >= CAP_TOKENS:""",
        """    spent = await ctx.get("tokens", type_hint=int) or 0
    messages = await ctx.get("messages", type_hint=int) or 0
    ctx.set("messages", messages + 1)
    if messages >= CAP_TOKENS // 150:"""),
        "never after"),
    "10.2 over the cap, not at it": ("10.2", _replace(
        "if spent >= CAP_TOKENS:", "if spent > CAP_TOKENS:"),
        "never after"),
}


# Correct answers that differ from the solution in what the exercise leaves open: each passes.
RIGHT_ANSWERS: dict[str, tuple[str, Callable[[str], str]]] = {
    "12.1 a span started and ended by hand": ("12.1", _replace(
        '    with tracer.start_as_current_span("notify warehouse",\n'
        '                                      attributes={"order.id": request["order_id"]}):\n'
        '        await ctx.run_typed("notify warehouse", notify_warehouse, RunOptions(),\n'
        '                            request["order_id"])\n',
        '    span = tracer.start_span("notify warehouse")\n'
        '    span.set_attribute("order.id", request["order_id"])\n'
        '    try:\n'
        '        await ctx.run_typed("notify warehouse", notify_warehouse, RunOptions(),\n'
        '                            request["order_id"])\n'
        '    finally:\n'
        '        span.end()\n')),
    "12.2 by service name": ("12.2", _replace(
        "target = 'Checkout/Pay'", "target_service_name = 'Checkout'")),
    "1.1 another name for the request id's step": ("1.1", _replace(
        'unique_key(ctx, "request id")', 'unique_key(ctx, "loyalty award id")')),
    "1.2 the confirmations awaited one by one": ("1.2", _replace(
        """        for confirmation in [ctx.service_call(flight_service.confirm, flight_id),
                             ctx.service_call(car_service.confirm, car_id),
                             ctx.service_call(hotel_service.confirm, hotel_id)]:
            await confirmation""",
        """        await ctx.service_call(flight_service.confirm, flight_id)
        await ctx.service_call(car_service.confirm, car_id)
        await ctx.service_call(hotel_service.confirm, hotel_id)""")),
    "2.1 the interval as a power of two": ("2.1", _replace(
        "    interval = event_transactions.poll_interval\n", "    checks = 0\n",
        """        await ctx.sleep(interval, name="moderation backoff")
        interval *= 2  #""",
        """        await ctx.sleep(event_transactions.poll_interval * 2 ** checks, name="backoff")
        checks += 1  #""")),
    "2.2 another message and status for the rejection": ("2.2", _replace(
        'raise TerminalError(f"post {post_id} rejected: still not moderated after "',
        'raise TerminalError(f"moderation gave up on post {post_id} after "')),
    "3.1 the flag computed when it is read": ("3.1", _replace(
        '    info["delivered"] = info.get("delivered") or '
        'update["location"] == info["finalDestination"]\n', "",
        '    return await ctx.get("package-info", type_hint=dict)',
        """    info = await ctx.get("package-info", type_hint=dict)
    if info is not None:
        info["delivered"] = any(place["location"] == info["finalDestination"]
                                for place in info["locations"])
    return info""")),
    "3.2 the early updates under another state key": ("3.2", _replace(
        'EARLY_KEY = "early-locations"', 'EARLY_KEY = "waiting-updates"')),
    "7.1 a withdrawal of another shape": ("7.1", _replace(
        """{"withdrawn": True, "reason": request["reason"]}""",
        """{"withdrawal": request["reason"]}""",
        'if decision.get("withdrawn"):', 'if "withdrawal" in decision:',
        "{decision['reason']}", "{decision['withdrawal']}")),
    "7.2 a loop instead of two waits": ("7.2", _replace(
        """    await ask(ctx, request["approver"], "first")
    winner, value = await restate.select(decision=decision.value(), timeout=ctx.sleep(timeout))
    if winner == "timeout":
        # Nobody answered in time: ask the second approver, and wait as long once more.
        await ask(ctx, request["escalate_to"], "escalated")
        winner, value = await restate.select(decision=decision.value(),
                                             timeout=ctx.sleep(timeout))""",
        """    for approver in (request["approver"], request["escalate_to"]):
        await ask(ctx, approver, approver)
        winner, value = await restate.select(decision=decision.value(),
                                             timeout=ctx.sleep(timeout))
        if winner == "decision":
            break""")),
    "8.1 the pending id under another state key": ("8.1", _replace(
        '"pending"', '"reminder-id"')),
    "8.2 another subject and message id": ("8.2", _replace(
        'f"{ctx.key()}: no luck"', 'f"Watch of {ctx.key()} stopped"',
        'f"{ctx.key()}-gave-up"', 'str(ctx.request().id)')),
    "9.1 the best fare by sorting": ("9.1", _replace(
        'return {"best": min(fares, key=lambda fare: fare["fare"]), "answered": answered}',
        'return {"best": sorted(fares, key=lambda fare: fare["fare"])[0], "answered": answered}')),
    "9.2 another key scheme for the user's bucket": ("9.2", _replace(
        """f"search-{request['user']}\"""", """f"user-search:{request['user']}\"""")),
    "10.1 another subject, another step name": ("10.1", _replace(
        'subject="Your trip"', 'subject="Itinerary"',
        'unique_key(ctx, "message id")', 'unique_key(ctx, "itinerary email id")')),
    "10.2 another name for the spend in the state": ("10.2", _replace(
        'ctx.get("tokens"', 'ctx.get("spent"', 'ctx.set("tokens"', 'ctx.set("spent"')),
    "11.1 the token's row inserted in a savepoint, its duplicate caught": ("11.1", _replace(
        REFUND_TOKEN,
        "        try:\n"
        "            with conn.transaction():  # a savepoint: a duplicate undoes only this\n"
        "                conn.execute(\"INSERT INTO refunds (refund_id) VALUES (%s)\",\n"
        "                             (refund[\"refund_id\"],))\n"
        "        except psycopg.errors.UniqueViolation:\n"
        "            return\n",
        "import restate\n", "import psycopg\nimport restate\n")),
    "11.2 an advisory lock per account instead of the row's": ("11.2", _replace(
        'conn.execute("SELECT 1 FROM accounts WHERE id = %s FOR UPDATE", (t["from"],))',
        'conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (t["from"],))')),
    "13.1 the token compared in constant time": ("13.1", _replace(
        "import secrets\n", "import hmac\nimport secrets\n",
        'if decision.get("token") != await ctx.get("token", type_hint=str):',
        'kept = await ctx.get("token", type_hint=str) or ""\n'
        '    if not hmac.compare_digest(str(decision.get("token", "")).encode(), kept.encode()):')),
    "13.2 the key id authenticated with the data, in a format of its own": ("13.2", _replace(
        """        data = AESGCM(ring.keys[key_id]).encrypt(nonce, buf, None)
        return json.dumps({"key": key_id, "data": base64.b64encode(nonce + data).decode()}
                          ).encode()""",
        """        data = AESGCM(ring.keys[key_id]).encrypt(nonce, buf, key_id.encode())
        return key_id.encode() + b":" + base64.b64encode(nonce + data)""",
        """        sealed = json.loads(buf)
        raw = base64.b64decode(sealed["data"])""",
        """        key_id, data = buf.decode().split(":", 1)
        raw = base64.b64decode(data)""",
        """ring.keys[sealed["key"]]).decrypt(raw[:12], raw[12:], None)""",
        """ring.keys[key_id]).decrypt(raw[:12], raw[12:], key_id.encode())""")),
}


def _serve_edited(lab: Lab, number: str, edit: Callable[[str], str],
                  name: str) -> dict[str, Any]:
    """Serve the solution changed by ``edit``; returns the namespace it was made in."""
    _, solution, service = EXERCISES[number]
    namespace: dict[str, Any] = {"__name__": name, "uuid": uuid, "lab": lab}
    exec(compile(edit(inspect.getsource(solution)), name, "exec"), namespace)  # noqa: S102
    _serve(lab, number, namespace)
    return namespace


def _still_running(lab: Lab, service: str) -> list[dict[str, Any]]:
    return lab.admin.sql("SELECT id, target, status FROM sys_invocation WHERE "
                         f"target_service_name = '{service}' AND status <> 'completed'")


@pytest.mark.parametrize("right", list(RIGHT_ANSWERS))
def test_a_correct_answer_unlike_the_solution_passes(lab: Lab, right: str,
                                                     request: pytest.FixtureRequest) -> None:
    number, edit = RIGHT_ANSWERS[right]
    lab = _lab_for(number, lab, request)
    namespace = _serve_edited(lab, number, edit, right)
    result = _check(lab, number, namespace)
    assert result.passed, result


@pytest.mark.parametrize("wrong", list(WRONG_ANSWERS))
def test_a_plausible_wrong_answer_is_not_yet(lab: Lab, wrong: str,
                                             request: pytest.FixtureRequest) -> None:
    number, edit, says = WRONG_ANSWERS[wrong]
    lab = _lab_for(number, lab, request)
    namespace = _serve_edited(lab, number, edit, f"wrong answer {wrong}")
    service = getattr(namespace[EXERCISES[number][2]], "name", "Checkout")  # 12.2: a query
    result = _check(lab, number, namespace)
    assert not result.passed, wrong
    assert result.expected and result.happened and result.hint, result
    assert any(reason in f"{result.expected} {result.happened}"
               for reason in ((says,) if isinstance(says, str) else says)), result
    if "Restate retried it" in result.happened:
        assert "TerminalError" in result.hint and "\n" not in result.happened, result
    # Whatever the answer did, the check left nothing of it running.
    wait_until(lambda: not _still_running(lab, service), 5, f"{service} to have ended")


def test_a_failed_check_leaves_no_chain_of_delayed_calls_running(lab: Lab) -> None:
    """The 8.2 starter never stops checking: a check that says "not yet" also ends the chain
    it started, so nothing keeps running in the background."""
    exec(compile(starters()["8.2"], "starter 8.2", "exec"), {"lab": lab})  # noqa: S102
    assert not exercises.check_give_up_watch(lab).passed
    left = lab.admin.sql("SELECT id, status FROM sys_invocation WHERE target_service_name = "
                         "'LimitedWatch' AND status <> 'completed'")
    assert left == []
