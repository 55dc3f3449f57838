"""The durable agent: TravelAgent's model calls are billed once, its tools take effect once,
through crashes, bad model answers and a person's approval — on the scripted model's billing
ledger and the airlines', flights', cars' and payments' ledgers."""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from restate import RunOptions

from restate_tutorial import views
from restate_tutorial.crashes import crash_test
from restate_tutorial.lab import IngressError, Lab, wait_until
from restate_tutorial.patterns import agent
from restate_tutorial.patterns.approvals import token_for, trip_to_approve
from restate_tutorial.scenarios import serve_scripted_model
from restate_tutorial.simulated import mailer, model, quotes

from ..ledgers import one_saga, saga_effects

pytestmark = pytest.mark.usefixtures("fresh_ledgers")
SEARCH = "flights from AMS to LIS please"
SEARCH_AND_BOOK = "flights from AMS to LIS, book it for Ada Lovelace"
BEST = "The best fare for AMS-LIS is €190 with TP (5 airlines answered)."


@pytest.fixture(scope="module")
def agent_lab(lab: Lab) -> Iterator[Lab]:
    serve_scripted_model()
    lab.serve(*agent.services)
    yield lab


@pytest.fixture(autouse=True)
def quick_model_patient_search(monkeypatch: pytest.MonkeyPatch) -> None:
    """A model that thinks 0.02 s; a fare search that waits 30 s for every airline (after a
    crash, on a loaded machine, five paced quotes can take longer than the learners' 10 s)."""
    monkeypatch.setattr(model, "LATENCY", 0.02)
    monkeypatch.setattr(agent, "SEARCH_DEADLINE_SECONDS", 30)


def conversation() -> str:
    return f"c-{uuid.uuid4().hex[:8]}"


def say(lab: Lab, key: str, text: Any) -> dict[str, Any]:
    return lab.ingress.call("TravelAgent", "Message", {"text": text}, key=key)


def awaiting_approval() -> str:
    """The trip the travel desk was asked to approve (it waits for a decision)."""
    wait_until(lambda: mailer.inbox(agent.APPROVER), 30, "the approval request")
    [request] = mailer.inbox(agent.APPROVER)
    return trip_to_approve(request["subject"])


def decide(lab: Lab, trip: str, approved: bool) -> None:
    """The travel desk decides, with the token of the message that asked it."""
    token = token_for(trip, mailer.inbox(agent.APPROVER))
    lab.ingress.call("TripApproval", "Decide",
                     {"approved": approved, "token": token, "reason": "policy"}, key=trip)


def test_a_conversation_searches_then_books_and_remembers_the_search(agent_lab: Lab) -> None:
    key = conversation()
    first = say(agent_lab, key, SEARCH)
    assert first["reply"].startswith(BEST) and first["model_calls"] == 2
    booked = say(agent_lab, key, "great, book it for Ada Lovelace")  # from the search before
    assert re.fullmatch(r"Booked TP AMS-LIS for Ada Lovelace: €190, booking \S+\.",
                        booked["reply"]), booked
    assert quotes.ledger.count("quote") == 5
    assert saga_effects() == one_saga(declined=False)
    assert model.bill()["calls"] == 4 and model.bill()["repeated"] == 0
    items = agent_lab.ingress.get("TravelAgent", "History", key=key)
    assert [i["content"] for i in items if i.get("role") == "user"] == [
        SEARCH, "great, book it for Ada Lovelace"]
    drawn = views.conversation(agent_lab.admin, "TravelAgent", key)
    assert drawn.column("who") == ["user", "model → tool", "tool → model", "assistant"] * 2
    assert drawn[5]["what"].startswith('book_flight({"route": "AMS-LIS", "airline": "TP"')


def test_the_loop_is_in_the_journal_model_turns_and_tool_calls(agent_lab: Lab) -> None:
    invocation = agent_lab.ingress.send("TravelAgent", "Message", {"text": SEARCH_AND_BOOK},
                                        key=conversation())
    assert agent_lab.ingress.attach(invocation)["reply"].startswith("Booked TP")
    steps = [(row["entry_type"], row["name"]) for row in views.journal(agent_lab.admin, invocation)
             if row["entry_type"].startswith("Command: ")]
    named = [name or entry.removeprefix("Command: ") for entry, name in steps]
    assert [s for s in named if s in ("call LLM", "Call", "trip id")] == [
        "call LLM", "Call", "call LLM", "trip id", "Call", "call LLM"], steps
    drawn = views.sequence(agent_lab.admin, invocation).mermaid()
    assert drawn.index("asks for search_fares") < drawn.index("FareSearch") \
        < drawn.index("asks for book_flight") < drawn.index("BookingWorkflow") \
        < drawn.index("answers “Booked TP"), drawn


def test_an_expensive_trip_waits_for_a_person_through_both_crashes(agent_lab: Lab) -> None:
    """KL at €240 is over the €200 rule: the agent waits for the travel desk. restate-server
    SIGKILLed and the service hosts crashed while it waits change nothing: the trip is
    booked once, every model call billed once, the conversation goes on."""
    key = conversation()
    say(agent_lab, key, SEARCH)
    waiting = agent_lab.ingress.send("TravelAgent", "Message",
                                     {"text": "book KL for Ada Lovelace"}, key=key)
    trip = awaiting_approval()
    agent_lab.server.restart()
    for host in agent_lab.service_hosts:
        host.restart()
    decide(agent_lab, trip, approved=True)
    reply = agent_lab.ingress.attach(waiting)["reply"]
    assert reply.startswith("Booked KL AMS-LIS for Ada Lovelace: €240"), reply
    assert saga_effects() == one_saga(declined=False)
    assert model.bill()["calls"] == 4 and model.bill()["repeated"] == 0, model.ledger.history()
    assert "€190 with TP" in say(agent_lab, key, SEARCH)["reply"]  # it goes on


def test_a_rejected_trip_is_not_booked_and_the_agent_says_why(agent_lab: Lab) -> None:
    key = conversation()
    waiting = agent_lab.ingress.send("TravelAgent", "Message",
                                     {"text": "AMS-LIS: book LH for Ada Lovelace"}, key=key)
    decide(agent_lab, awaiting_approval(), approved=False)
    reply = agent_lab.ingress.attach(waiting)["reply"]
    assert '"booked": false' in reply and f"rejected by {agent.APPROVER}: policy" in reply, reply
    assert saga_effects() == {"flights": [], "car-rentals": [], "payments": []}


def test_a_model_that_fails_for_a_while_is_retried_by_restate(agent_lab: Lab) -> None:
    model.fail_next(2)
    assert say(agent_lab, conversation(), SEARCH)["reply"].startswith(BEST)
    assert model.ledger.history() == ["503", "503", "call", "call"]


def test_tool_arguments_that_are_not_json_go_back_to_the_model(agent_lab: Lab) -> None:
    model.answer_badly_next()
    answer = say(agent_lab, conversation(), SEARCH)
    assert answer["reply"].startswith(BEST) and answer["model_calls"] == 3
    assert quotes.ledger.count("quote") == 5  # one search: the bad call did nothing


def test_a_tool_that_does_not_exist_ends_the_turn_without_retrying(agent_lab: Lab) -> None:
    """Retrying would replay the same journaled answer forever: the user is told instead."""
    key = conversation()
    model.call_unknown_tool_next()
    answer = say(agent_lab, key, SEARCH)
    assert "Tool teleport not found" in answer["reply"] and answer["error"]
    assert quotes.ledger.count() == 0 and model.bill()["calls"] == 1
    assert say(agent_lab, key, SEARCH)["reply"].startswith(BEST)


@pytest.mark.parametrize(("body", "names"), [
    (b"{}", "'text'"), (b'{"text": 5}', "'text'"), (b'{"text": ""}', "message text"),
    (b'{"text": NaN}', "finite number"), (b'{"text": "\\ud800"}', "surrogate"),
    (b'{"text": ' + b"9" * 400 + b"}", "'text'"), (b"not json", "JSON"),
    (b'{"text": "' + b"x" * 7000 + b'"}', "7,000 characters"),
])
def test_bad_messages_are_refused_at_the_edge_and_cost_nothing(
        agent_lab: Lab, body: bytes, names: str) -> None:
    with pytest.raises(IngressError) as refused:
        say_raw(agent_lab, body)
    assert refused.value.status == 400 and names in refused.value.message, refused.value
    assert model.bill()["calls"] == 0


def say_raw(lab: Lab, body: bytes) -> Any:
    return lab.ingress.call("TravelAgent", "Message", body, key=conversation())


def test_two_messages_at_once_in_one_conversation_are_taken_in_turn(agent_lab: Lab) -> None:
    key, other = conversation(), conversation()
    answers: dict[str, Any] = {}
    threads = [threading.Thread(target=lambda k=k, t=t: answers.update({t: say(agent_lab, k, t)}))
               for k, t in ((key, SEARCH), (key, "hello"), (other, "AMS-OPO"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert answers[SEARCH]["reply"].startswith(BEST) and answers["hello"]["reply"]
    assert "AMS-OPO" in answers["AMS-OPO"]["reply"]
    mine = [i["content"] for i in agent_lab.ingress.get("TravelAgent", "History", key=key)
            if i.get("role") == "user"]
    assert sorted(mine) == sorted([SEARCH, "hello"])  # both, one after the other, in one history
    theirs = agent_lab.ingress.get("TravelAgent", "History", key=other)
    assert [i["content"] for i in theirs if i.get("role") == "user"] == ["AMS-OPO"]


def test_the_same_message_sent_twice_with_an_idempotency_key_is_answered_once(
        agent_lab: Lab) -> None:
    key, idempotency_key = conversation(), uuid.uuid4().hex
    first = agent_lab.ingress.call("TravelAgent", "Message", {"text": SEARCH}, key=key,
                                   idempotency_key=idempotency_key)
    again = agent_lab.ingress.call("TravelAgent", "Message", {"text": SEARCH}, key=key,
                                   idempotency_key=idempotency_key)
    assert again == first and model.bill()["calls"] == 2


@pytest.mark.parametrize("mode", ["service host crash"])
# (restate-server SIGKILL too: `crash_test(lab, start, check)`; a turn that books as well:
# `benchmarks/agent_billing.py`, both modes — about a minute more each here.)
def test_a_turn_keeps_every_effect_once_whichever_entry_it_crashes_after(
        agent_lab: Lab, mode: str) -> None:
    """A turn of the loop (the model asks for a search, the search, the model answers), crashed
    after each journal entry in turn: five quotes, two model answers journaled — a model call
    cut off by the crash before its answer was journaled is the only one billed again."""
    def start(run: str) -> str:
        for simulated in (quotes, model):
            simulated.reset()
        return agent_lab.ingress.send("TravelAgent", "Message", {"text": SEARCH},
                                      key=conversation())

    def check(run: str, invocation_id: str) -> None:
        reply = agent_lab.ingress.attach(invocation_id)["reply"]
        assert reply.startswith(BEST), reply
        assert quotes.ledger.count("quote") == 5
        bill = model.bill()
        assert bill["calls"] - bill["repeated"] == 2 and bill["repeated"] <= 1, \
            model.ledger.history()

    report = crash_test(agent_lab, start, check, modes=[mode])
    report.assert_safe()
    assert report.entries >= 8


def test_a_model_that_stays_down_fails_the_turn_clearly_and_loses_nothing(
        agent_lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """After the step's last attempt the turn fails with the model's error; the conversation's
    history is as before, and the next message is answered."""
    monkeypatch.setattr(agent, "MODEL_CALL", RunOptions(max_attempts=2))
    key = conversation()
    model.fail_next(2)
    with pytest.raises(IngressError) as failed:
        say(agent_lab, key, SEARCH)
    assert "503" in failed.value.message and "overloaded" in failed.value.message, failed.value
    assert agent_lab.ingress.get("TravelAgent", "History", key=key) == []
    assert say(agent_lab, key, SEARCH)["reply"].startswith(BEST)


def test_the_fare_booked_is_the_airlines_not_one_the_model_names() -> None:
    """The model chooses the route, the airline and the passenger; the price, and so whether a
    person must approve, comes from the conversation's last search (state "fares")."""
    parameters = agent.book_flight.params_json_schema["properties"]
    assert sorted(parameters) == ["airline", "passenger_name", "route"]
