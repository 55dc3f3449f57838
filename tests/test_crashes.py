"""crash_test: a scenario crashed at every journal entry, in both modes, checked after each
crash. It catches a planted bug (a side effect outside ctx.run), and the tutorial's saga and
ProcessPost pass it — the crash points of the saga are every entry of its journal."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
import restate
from restate import Context, RunOptions

from restate_tutorial.crashes import crash_test
from restate_tutorial.lab import IngressError, Lab
from restate_tutorial.scenarios import GOOD_CARD, booking
from restate_tutorial.simulated import social, travel

from .ledgers import one_saga, saga_effects

pytestmark = [pytest.mark.usefixtures("fresh_ledgers"), pytest.mark.lab_restate]

# A planted bug: the e-mail is sent outside ctx.run, so every replay sends it again.
sent: list[str] = []
orders = restate.Service("CrashTestOrders")


@orders.handler()
async def place(ctx: Context, order: str) -> str:
    sent.append(order)  # BUG: not a journaled step
    await ctx.sleep(timedelta(milliseconds=300))  # a wait: a crash lands in the attempt
    await ctx.run_typed("reserve", lambda: "reserved", RunOptions())
    return await ctx.run_typed("charge", lambda: "charged", RunOptions())


def test_a_side_effect_outside_ctx_run_is_caught_at_the_entry_that_repeats_it(
        lab: Lab) -> None:
    lab.serve(orders)

    def start(run: str) -> str:
        return lab.ingress.send("CrashTestOrders", "place", run)

    def check(run: str, invocation_id: str) -> None:
        assert sent.count(run) == 1, f"the e-mail for {run} was sent {sent.count(run)} times"

    report = crash_test(lab, start, check, modes=["service host crash"])
    assert report.broken, str(report)
    shown = str(report)
    assert "BROKEN  service host crash after entry" in shown
    assert "was sent 2 times" in shown and "Command: Run" in shown  # the run's journal
    with pytest.raises(AssertionError, match="broken"):
        report.assert_safe()


@pytest.mark.parametrize(("card", "mode"), [
    ("declined", "restate-server SIGKILL"), ("accepted", "service host crash")])
# (Each outcome in the other mode too: `crash_test(lab, start, check)`, about 25 s more each.)
def test_the_saga_keeps_every_effect_once_whichever_entry_it_crashes_after(
        lab: Lab, card: str, mode: str) -> None:
    """The booking ends as without a crash (a result, or the declined payment's 402), and each
    reservation, charge, confirmation, cancellation and refund took effect once (a step whose
    answer the crash lost is asked again with its key: a repeat, no effect) — with the crash
    after each entry of the saga's journal in turn."""
    declined = card == "declined"

    def start(run: str) -> str:
        travel.reset()
        body = booking() if declined else booking(GOOD_CARD)
        return lab.ingress.send("BookingWorkflow", "Run", body,
                                key=f"crash-{run}-{uuid.uuid4().hex[:6]}")

    def check(run: str, invocation_id: str) -> None:
        ended: Any = lab.ingress.outcome(invocation_id)
        assert (isinstance(ended, IngressError) and ended.status == 402) if declined \
            else isinstance(ended, dict), ended
        assert saga_effects() == one_saga(declined), saga_effects()

    report = crash_test(lab, start, check, modes=[mode])
    report.assert_safe()
    # Each run crashed at an entry of its own, at or after the one it aimed at; most land there.
    landed = [run.entries_at_crash for run in report.runs]
    assert len(set(landed)) == len(landed), report
    assert all(run.entries_at_crash > run.after_entry for run in report.runs), report
    assert report.entries >= 10 and len(report.runs) >= report.entries // 2, report


@pytest.mark.parametrize("mode", ["service host crash"])
def test_process_post_keeps_one_post_and_one_feed_update_whichever_entry_it_crashes_after(
        lab: Lab, mode: str) -> None:
    def start(run: str) -> str:
        user = f"crash-{run}-{uuid.uuid4().hex[:6]}"
        social.moderation.script(user, 2)  # two checks: a durable sleep between them
        return lab.ingress.send("UserFeed", "ProcessPost",
                                {"content": f"post of {run}", "metadata": "public"}, key=user)

    def check(run: str, invocation_id: str) -> None:
        [row] = lab.admin.sql(f"SELECT target_service_key FROM sys_invocation "
                              f"WHERE id = '{invocation_id}'")
        user = row["target_service_key"]
        assert social.social_media.ledger.count("create_post", user_id=user) == 1
        assert len(social.social_media.feed(user)) == 1

    crash_test(lab, start, check, modes=[mode]).assert_safe()
