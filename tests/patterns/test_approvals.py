"""TripApproval: a workflow that waits for a person's decision, or for its deadline — and
survives crashes while it waits."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from restate_tutorial.lab import IngressError, Lab, wait_until
from restate_tutorial.patterns.approvals import token_for
from restate_tutorial.scenarios import GOOD_BOOKING, SEED_BOOKING
from restate_tutorial.simulated import mailer, travel

pytestmark = pytest.mark.usefixtures("fresh_ledgers")
_submitted: list[str] = []


@pytest.fixture(autouse=True)
def nothing_left_waiting(lab: Lab) -> Iterator[None]:
    """A trip a test leaves waiting is killed after it: its expiry would e-mail the approver
    during a later test (whose ledger counts would be off)."""
    yield
    trips = ", ".join(f"'{trip}'" for trip in _submitted)
    _submitted.clear()
    if trips:
        for row in lab.admin.sql("SELECT id FROM sys_invocation WHERE target_service_name = "
                                 f"'TripApproval' AND target_service_key IN ({trips}) AND "
                                 "status <> 'completed'"):
            lab.admin.kill(row["id"])


def submit(lab: Lab, timeout: float = 60, booking: dict[str, Any] = GOOD_BOOKING) -> str:
    """Start an approval; returns the trip id once it waits for the decision."""
    trip = f"trip-{uuid.uuid4().hex[:8]}"
    _submitted.append(trip)
    approver = f"boss-{trip}"
    lab.ingress.send("TripApproval", "Run", {**booking, "approver": approver,
                                             "timeout_seconds": timeout}, key=trip)
    wait_until(lambda: bool(mailer.inbox(approver)), 30, f"the approver of {trip} asked")
    return trip


def token(trip: str) -> str:
    """The decision token of the latest message asking to approve ``trip``."""
    return token_for(trip, mailer.ledger.entries("notify"))


def decide(lab: Lab, trip: str, approved: bool, reason: str = "ok", **extra: Any) -> Any:
    """Decide as the approver does: with the token of their message."""
    decision = {"approved": approved, "token": token(trip), "reason": reason, **extra}
    return lab.ingress.call("TripApproval", "Decide", decision, key=trip)


def status(lab: Lab, trip: str) -> str:
    return str(lab.ingress.get("TripApproval", "Status", key=trip)["status"])


def run_result(lab: Lab, trip: str) -> Any:
    return lab.ingress.outcome(lab.admin.wait_for_invocation("TripApproval", trip, handler="Run"),
                               timeout=60)


def test_the_approver_is_asked_with_the_exact_request_and_approval_books_the_trip(
        lab: Lab) -> None:
    trip = submit(lab)
    [asked] = mailer.inbox(f"boss-{trip}")
    assert f"localhost:8080/TripApproval/{trip}/Decide" in asked["body"]
    assert status(lab, trip) == "waiting"
    assert travel.flights.ledger.count() == 0  # nothing reserved while it waits
    assert decide(lab, trip, True) == {"trip": trip, "decision": "approved"}
    result = run_result(lab, trip)
    assert result["approved_by"] == f"boss-{trip}" and result["flight_reservation"]
    assert status(lab, trip) == "booked"
    assert travel.saga_history() == {"flights": ["reserve", "confirm"],
                                     "car-rentals": ["reserve", "confirm"],
                                     "payments": ["charge"]}


def test_a_rejection_fails_with_403_and_reserves_nothing(lab: Lab) -> None:
    trip = submit(lab)
    decide(lab, trip, False, reason="too expensive")
    failed = run_result(lab, trip)
    assert isinstance(failed, IngressError) and failed.status == 403
    assert failed.message == f"rejected by boss-{trip}: too expensive"
    assert status(lab, trip) == "rejected" and travel.flights.ledger.count() == 0


def test_no_decision_in_time_is_408_and_a_late_decision_is_404(lab: Lab) -> None:
    trip = submit(lab, timeout=1)
    expired = run_result(lab, trip)
    assert isinstance(expired, IngressError) and expired.status == 408
    assert "no decision within 1 s" in expired.message
    assert [m["subject"] for m in mailer.inbox(f"boss-{trip}")] == [
        f"Approve trip {trip}?", f"Trip {trip} expired"]
    with pytest.raises(IngressError) as late:
        decide(lab, trip, True)
    assert late.value.status == 404 and "expired" in late.value.message
    assert status(lab, trip) == "expired" and travel.flights.ledger.count() == 0


def test_a_second_decision_is_409_naming_the_first_which_stands(lab: Lab) -> None:
    trip = submit(lab)
    decide(lab, trip, False, reason="no")
    with pytest.raises(IngressError) as second:
        decide(lab, trip, True)
    assert second.value.status == 409
    assert second.value.message == f"trip {trip} was already rejected by boss-{trip}; that " \
                                   "decision stands"
    assert run_result(lab, trip).status == 403


def test_a_decision_before_the_trip_is_submitted_is_404_and_decides_nothing(lab: Lab) -> None:
    trip = f"never-{uuid.uuid4().hex[:8]}"
    with pytest.raises(IngressError) as unknown:
        lab.ingress.call("TripApproval", "Decide",
                         {"approved": True, "token": "guess", "reason": "ok"}, key=trip)
    assert unknown.value.status == 404 and "never submitted" in unknown.value.message
    assert status(lab, trip) == "unknown" and travel.flights.ledger.count() == 0
    # Submitted afterwards, it waits: the refused decision did not complete its promise.
    lab.ingress.send("TripApproval", "Run", {**GOOD_BOOKING, "approver": "Ada"}, key=trip)
    wait_until(lambda: status(lab, trip) == "waiting", 30, f"{trip} to wait")
    decide(lab, trip, False, reason="no")
    assert run_result(lab, trip).status == 403 and travel.flights.ledger.count() == 0


def test_two_decisions_racing_from_two_threads_one_wins(lab: Lab) -> None:
    trip = submit(lab)
    answers: dict[str, Any] = {}

    def decide_as(click: str, approved: bool) -> None:  # the approver clicks both, at once
        try:
            answers[click] = decide(lab, trip, approved)
        except IngressError as error:
            answers[click] = error

    threads = [threading.Thread(target=decide_as, args=(click, approved))
               for click, approved in (("approve", True), ("reject", False))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    won = [who for who, answer in answers.items() if isinstance(answer, dict)]
    lost = [answer for answer in answers.values() if isinstance(answer, IngressError)]
    assert len(won) == 1 and len(lost) == 1 and lost[0].status == 409, answers
    result = run_result(lab, trip)
    if won == ["approve"]:
        assert result["approved_by"] == f"boss-{trip}"
    else:
        assert result.status == 403 and f"boss-{trip}" in result.message


def test_the_same_trip_submitted_twice_runs_once(lab: Lab) -> None:
    trip = submit(lab)
    with pytest.raises(IngressError) as again:
        lab.ingress.call("TripApproval", "Run", {**GOOD_BOOKING, "approver": "someone else"},
                         key=trip)
    assert again.value.status == 409
    assert mailer.inbox("someone else") == []


@pytest.mark.lab_restate
def test_restate_crashing_while_it_waits_loses_nothing(lab: Lab) -> None:
    """restate-server SIGKILLed while the approval waits: the decision still arrives, and a
    deadline still fires at its journaled time."""
    waiting, short = submit(lab), submit(lab, timeout=4)
    lab.server.restart()
    assert status(lab, waiting) == "waiting"
    decide(lab, waiting, True)
    assert run_result(lab, waiting)["approved_by"] == f"boss-{waiting}"
    assert run_result(lab, short).status == 408
    assert len(mailer.inbox(f"boss-{waiting}")) == 1  # asked once, despite the crash


def test_the_service_host_crashing_while_it_waits_loses_nothing(lab: Lab) -> None:
    trip = submit(lab)
    lab.host.restart()
    decide(lab, trip, True)
    assert run_result(lab, trip)["approved_by"] == f"boss-{trip}"
    assert len(mailer.inbox(f"boss-{trip}")) == 1


def test_an_approved_trip_whose_card_is_declined_fails_and_is_undone(lab: Lab) -> None:
    trip = submit(lab, booking=SEED_BOOKING)
    decide(lab, trip, True)
    failed = run_result(lab, trip)
    assert failed.status == 402 and status(lab, trip) == "failed"
    assert travel.saga_history()["flights"] == ["reserve", "cancel [cancelled]"]


@pytest.mark.parametrize(("body", "complaint"), [
    ({**GOOD_BOOKING}, "'approver'"),
    ({**GOOD_BOOKING, "approver": "Ada", "timeout_seconds": 0}, "timeout_seconds"),
    ({**GOOD_BOOKING, "approver": "Ada", "timeout_seconds": 10**9}, "to 604,800"),
    ({"approver": "Ada"}, "malformed booking"),
])
def test_a_malformed_request_is_400_and_asks_nobody(lab: Lab, body: Any,
                                                    complaint: str) -> None:
    with pytest.raises(IngressError) as refused:
        lab.ingress.call("TripApproval", "Run", body, key=f"bad-{uuid.uuid4().hex[:8]}")
    assert refused.value.status == 400 and complaint in refused.value.message
    assert mailer.ledger.count("notify", to="Ada") == 0


def test_a_malformed_decision_is_400(lab: Lab) -> None:
    trip = submit(lab)
    with pytest.raises(IngressError) as refused:
        lab.ingress.call("TripApproval", "Decide", {"approved": "yes", "token": token(trip),
                                                    "reason": "ok"}, key=trip)
    assert refused.value.status == 400 and "'approved' must be true or false" in \
        refused.value.message
    assert status(lab, trip) == "waiting"
    decide(lab, trip, False)  # let it end


def test_a_purged_trip_can_be_submitted_again_and_decided_afresh(lab: Lab) -> None:
    """Purging a trip's run (`restate invocations purge TripApproval/<trip>`) frees its id:
    the state and the promise go with it, so the old rejection does not decide the new run."""
    trip = submit(lab)
    decide(lab, trip, False, reason="too expensive")
    assert run_result(lab, trip).status == 403
    lab.cli("invocations", "purge", f"TripApproval/{trip}")
    assert status(lab, trip) == "unknown"

    lab.ingress.send("TripApproval", "Run", {**GOOD_BOOKING, "approver": f"boss-{trip}"},
                     key=trip)
    wait_until(lambda: len(mailer.inbox(f"boss-{trip}")) == 2, 30, "the approver asked again")
    assert status(lab, trip) == "waiting"
    first = token_for(trip, mailer.inbox(f"boss-{trip}")[:1])
    second = token(trip)
    assert first != second  # a new run, a new token: the old one decides nothing
    with pytest.raises(IngressError) as old:
        lab.ingress.call("TripApproval", "Decide",
                         {"approved": True, "token": first, "reason": "ok"}, key=trip)
    assert old.value.status == 403
    decide(lab, trip, True)
    assert run_result(lab, trip)["approved_by"] == f"boss-{trip}"
    assert travel.flights.ledger.count("confirm") == 1


def test_a_booked_trip_resubmitted_after_a_purge_is_not_booked_twice(lab: Lab) -> None:
    """The booking keeps the trip id: purging only the approval leaves BookingWorkflow/<trip>
    done, so a second approval of the same trip fails (409) instead of booking it again."""
    trip = submit(lab)
    decide(lab, trip, True)
    assert run_result(lab, trip)["approved_by"] == f"boss-{trip}"
    lab.cli("invocations", "purge", f"TripApproval/{trip}")
    lab.ingress.send("TripApproval", "Run", {**GOOD_BOOKING, "approver": f"boss-{trip}"},
                     key=trip)
    wait_until(lambda: len(mailer.inbox(f"boss-{trip}")) == 2, 30, "the approver asked again")
    decide(lab, trip, True)
    again = run_result(lab, trip)
    assert isinstance(again, IngressError) and again.status == 409, again
    assert status(lab, trip) == "failed"
    assert travel.flights.ledger.count("reserve") == travel.payments.ledger.count("charge") == 1


@pytest.mark.parametrize("forged", [
    pytest.param({"token": "guess"}, id="a guessed token"),
    pytest.param({"token": ""}, id="an empty token"),
    pytest.param({"token": "token of another trip"}, id="another trip's token"),
    pytest.param({"token": "its token with a byte more"}, id="its token with a byte more"),
])
def test_a_decision_without_the_approvers_token_is_403_and_changes_nothing(
        lab: Lab, forged: dict[str, str]) -> None:
    trip, other = submit(lab), None
    if forged["token"] == "token of another trip":
        other = submit(lab)
        forged = {"token": token(other)}
    elif forged["token"] == "its token with a byte more":
        forged = {"token": token(trip) + "0"}
    with pytest.raises(IngressError) as refused:
        lab.ingress.call("TripApproval", "Decide",
                         {"approved": True, "reason": "ok", **forged}, key=trip)
    assert refused.value.status == 403 and "only they can decide" in refused.value.message
    assert status(lab, trip) == "waiting"
    decide(lab, trip, False, reason="no")  # the approver's own decision still decides
    assert run_result(lab, trip).status == 403 and travel.flights.ledger.count() == 0


def test_a_decision_with_no_token_is_400(lab: Lab) -> None:
    trip = submit(lab)
    with pytest.raises(IngressError) as refused:
        lab.ingress.call("TripApproval", "Decide",
                         {"approved": True, "by": f"boss-{trip}", "reason": "ok"}, key=trip)
    assert refused.value.status == 400 and "'token'" in refused.value.message
    assert status(lab, trip) == "waiting"
    decide(lab, trip, False)


def test_the_decision_is_the_approvers_whoever_the_body_names(lab: Lab) -> None:
    """A body that names someone else ("by") is decided as the token's approver."""
    trip = submit(lab)
    decide(lab, trip, True, by="mallory")
    assert run_result(lab, trip)["approved_by"] == f"boss-{trip}"
    assert lab.ingress.get("TripApproval", "Status", key=trip)["decided_by"] == f"boss-{trip}"


def test_status_never_shows_the_token(lab: Lab) -> None:
    trip = submit(lab)
    assert token(trip) not in str(lab.ingress.get("TripApproval", "Status", key=trip))
    decide(lab, trip, False)


def test_a_10_kb_trip_id_is_clipped_in_the_answer(lab: Lab) -> None:
    with pytest.raises(IngressError) as unknown:
        lab.ingress.call("TripApproval", "Decide",
                         {"approved": True, "token": "t", "reason": "ok"}, key="k" * 10_000)
    assert unknown.value.status == 404 and len(unknown.value.message) < 200, \
        len(unknown.value.message)
