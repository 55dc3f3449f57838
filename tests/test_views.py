"""Views render what Restate recorded (real data from the lab), as text and as HTML."""

from __future__ import annotations

import re
import uuid

import pytest

from restate_tutorial import views
from restate_tutorial.lab import IngressError, Lab
from restate_tutorial.scenarios import GOOD_BOOKING
from restate_tutorial.views import Table, entry_detail


def test_journal_view_shows_steps_sleep_and_results(lab: Lab) -> None:
    invocation = lab.ingress.send("Greeter", "greet", {"name": "View", "delay_seconds": 0.1})
    result = lab.ingress.attach(invocation)
    journal = views.journal(lab.admin, invocation)
    assert journal.column("entry_type") == [
        "Command: Input", "Command: Run", "Notification: Run", "Command: Sleep",
        "Notification: Sleep", "Command: Run", "Notification: Run", "Command: Output"]
    assert journal.column("name")[1] == "draft greeting"
    assert journal[2]["detail"] == f'✓ "{result["greeting_id"]}"'
    assert journal[3]["detail"].startswith("wake_up_time=")
    text, page = str(journal), journal._repr_html_()
    assert "draft greeting" in text and "Command: Sleep" in text
    assert "<table" in page and "wait before sending" in page


def test_invocations_view_filters_by_service_key_and_status(lab: Lab) -> None:
    key = f"v-{uuid.uuid4().hex[:6]}"
    lab.ingress.call("Inbox", "add", {"x": 1}, key=key)
    rows = views.invocations(lab.admin, service="Inbox", key=key, handler="add")
    assert len(rows) == 1
    assert rows[0]["status"] == "completed" and rows[0]["via"] == "ingress"
    # A completed greeting of this test's own (whatever else this worker ran before).
    lab.ingress.call("Greeter", "greet", {"name": key, "delay_seconds": 0})
    done = views.invocations(lab.admin, service="Greeter", status="completed")
    assert done and all(r["target"] == "Greeter/greet" and not r["failure"] for r in done)
    assert done.link == f"{lab.admin.url}/ui/invocations" and done.link in done._repr_html_()


def test_failures_are_shown_with_their_message(lab: Lab) -> None:
    invocation = lab.ingress.send("Greeter", "greet", {"bad": True})
    with pytest.raises(IngressError) as failed:
        lab.ingress.attach(invocation)
    assert failed.value.status == 400
    [row] = [r for r in views.invocations(lab.admin, service="Greeter") if r["id"] == invocation]
    assert "malformed greeting" in row["failure"] and row["status"] == "failed"
    assert invocation in [r["id"] for r in views.invocations(lab.admin, status="failed")]
    journal = views.journal(lab.admin, invocation)
    assert journal[-1]["detail"].startswith("✗ [400] malformed greeting")


def test_state_view_shows_the_value_for_one_key(lab: Lab) -> None:
    key = f"s-{uuid.uuid4().hex[:6]}"
    lab.ingress.call("Inbox", "add", {"hello": "state"}, key=key)
    table = views.state(lab.admin, "Inbox", key)
    assert [(r["service_key"], r["key"]) for r in table] == [(key, "messages")]
    assert '"hello"' in table[0]["value"]
    assert key in str(views.state(lab.admin, "Inbox"))


def test_waiting_view_names_the_promise_the_timer_and_the_call_each_invocation_waits_on(
        lab: Lab) -> None:
    trip = f"w-{uuid.uuid4().hex[:6]}"
    approval = lab.ingress.send("TripApproval", "Run", {**GOOD_BOOKING, "approver": "Ada",
                                                        "timeout_seconds": 172_800}, key=trip)
    lab.admin.wait_for_entry(approval, "Command: Sleep")
    greeting = lab.ingress.send("Greeter", "greet", {"name": trip, "delay_seconds": 30})
    lab.admin.wait_for_entry(greeting, "Command: Sleep")
    try:
        waits = {row["id"]: row["waits for"] for row in views.waiting(lab.admin)}
        [due] = views.sleeps(lab.admin, approval)  # in two days: the view says which day
        assert waits[approval].startswith(f"promise 'decision'; timer at {due:%Y-%m-%d} ")
        # Two days from when the timer was set, less the time since (a loaded machine: seconds).
        until = re.search(r"\(in (\d+) s\)$", waits[approval])
        assert until and 172_800 - 30 < int(until[1]) <= 172_800, waits[approval]
        timer = re.fullmatch(r"timer at \d\d:\d\d:\d\d\.\d{3} \(in (\d+) s\)", waits[greeting])
        assert timer is not None and 0 < int(timer[1]) <= 30, waits[greeting]
        assert [r["id"] for r in views.waiting(lab.admin, service="Greeter")] == [greeting]
    finally:
        lab.admin.kill(approval)
        lab.admin.kill(greeting)
    lab.admin.wait_until_ended(approval, greeting)
    assert {approval, greeting}.isdisjoint(r["id"] for r in views.waiting(lab.admin))


def test_sql_strings_are_quoted() -> None:
    assert views.sql_string("it's") == "'it''s'"


def test_table_renders_empty_and_escapes_html() -> None:
    table = Table("T", ["a"], [{"a": "<b>x</b>"}])
    assert "&lt;b&gt;" in table._repr_html_()
    assert "(no rows)" in str(Table("T", ["a"], []))


def test_a_slice_of_a_table_is_a_table_and_a_row_is_a_dict() -> None:
    table = Table("T", ["a"], [{"a": n} for n in range(9)], link="http://ui")
    last = table[-2:]
    assert isinstance(last, Table) and last.column("a") == [7, 8] and last.link == "http://ui"
    assert table[0] == {"a": 0}


def test_entry_detail_decodes_payloads_and_failures() -> None:
    assert entry_detail('{"Command":{"Input":{"payload":[123,125],"headers":[]}}}') == "{}"
    payload = list(b'{"a":1,"b":[2,3]}')
    # Spaces after commas and colons: a long payload wraps between its fields.
    assert entry_detail(f'{{"Command":{{"Input":{{"payload":{payload}}}}}}}') == (
        '{"a": 1, "b": [2, 3]}')
    failure = '{"Command":{"Output":{"result":{"Failure":{"code":409,"message":"no"}}}}}'
    assert entry_detail(failure) == "✗ [409] no"


def test_diagram_labels_shorten_uuids_and_cut_at_a_word() -> None:
    diagram = views.SequenceDiagram("BookingWorkflow", [
        ("Flights", "BookingWorkflow", '✓ "8685229b-c219-466f-9a70-9f54b968a1b9"'),
        ("BookingWorkflow", "BookingWorkflow",
         "run charge ✗ [402] This payment should never be accepted! Aborting booking. Really.")])
    text = diagram.mermaid()
    assert '✓ "8685229b…"' in text and "c219-466f" not in text
    assert "Aborting …" in text  # cut between words, not in one
    assert "8685229b-c219-466f-9a70-9f54b968a1b9" in str(diagram)  # the text keeps the whole id


def test_waterfall_places_the_calls_and_entries_of_a_saga_on_one_scale(lab: Lab) -> None:
    booking = {"flights": {"flight_id": "1", "passenger_name": "W"},
               "car": {"pickup_location": "A", "rental_date": "2024-12-16"},
               "payment_info": {"card_number": "5555555555554444", "amount": 10}}
    invocation = lab.ingress.send("BookingWorkflow", "Run", booking, key=f"w-{uuid.uuid4().hex}")
    lab.ingress.attach(invocation)
    chart = views.waterfall(lab.admin, invocation)
    assert chart[0]["what"].startswith("BookingWorkflow/w-") and chart[0]["bar"] == "█" * 40
    calls = [row for row in chart if row["what"].startswith("call ")]
    assert [row["what"] for row in calls[:2]] == ["call Flights/Reserve", "call CarRentals/Reserve"]
    assert all(row["took_ms"] is not None and "█" in row["bar"] for row in calls)
    entries = [row for row in chart if row["what"].startswith("#")]
    assert any("charge" in row["what"] for row in entries)
    assert all(row["took_ms"] is None and row["bar"].endswith("│") for row in entries)
    offsets = [row["at_ms"] for row in chart[1:]]
    assert offsets == sorted(offsets) and all(len(row["bar"]) <= 40 for row in chart)
    assert 0 <= offsets[0] and offsets[-1] <= chart[0]["took_ms"]
