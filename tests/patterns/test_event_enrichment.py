"""PackageTracker: state enriched over HTTP and Kafka, queryable three ways, surviving crashes."""

from __future__ import annotations

import json
import uuid

import pytest

from restate_tutorial import views
from restate_tutorial.lab import IngressError, Lab, wait_until
from restate_tutorial.logbook import logbook

TOPIC = "package-location-updates"
PARIS = {"timestamp": "2024-10-10 13:00", "location": "Pinetree Road 5, Paris"}
BRUSSELS = {"timestamp": "2024-10-10 14:00", "location": "Mountain Road 155, Brussels"}


@pytest.fixture(scope="module")
def tracker(lab: Lab) -> Lab:
    lab.subscribe(TOPIC, "PackageTracker", "UpdateLocation")
    return lab


def package() -> str:
    return f"package-{uuid.uuid4().hex[:8]}"


def info(lab: Lab, key: str) -> dict:
    return lab.ingress.get("PackageTracker", "getPackageInfo", key=key)


def wait_for_locations(lab: Lab, key: str, count: int) -> dict:
    wait_until(lambda: len(info(lab, key)["locations"]) >= count, 60,
               f"{count} locations for {key}")
    return info(lab, key)


def test_registration_and_kafka_updates_enrich_the_state(tracker: Lab) -> None:
    key = package()
    tracker.ingress.call("PackageTracker", "RegisterPackage",
                         {"finalDestination": "Bridge 6, Amsterdam"}, key=key)
    assert info(tracker, key) == {"finalDestination": "Bridge 6, Amsterdam", "locations": []}
    tracker.broker.produce(TOPIC, key, PARIS)
    tracker.broker.produce(TOPIC, key, BRUSSELS)
    expected = {"finalDestination": "Bridge 6, Amsterdam",
                "locations": [{"location": PARIS["location"], "timestamp": PARIS["timestamp"]},
                              {"location": BRUSSELS["location"],
                               "timestamp": BRUSSELS["timestamp"]}]}
    assert wait_for_locations(tracker, key, 2) == expected

    # The same state three ways: the handler, Restate's SQL state table, the official CLI.
    state = views.state(tracker.admin, "PackageTracker", key)
    assert [row["key"] for row in state] == ["package-info"]
    assert json.loads(state[0]["value"]) == expected
    cli = tracker.cli("kv", "get", "PackageTracker", key)
    assert "package-info" in cli and "Mountain Road 155, Brussels" in cli
    assert cli.index("Pinetree Road 5, Paris") < cli.index("Mountain Road 155, Brussels")

    # Which invocation came from where, according to Restate.
    rows = views.invocations(tracker.admin, service="PackageTracker", key=key)
    via = {(r["target"].split("/")[-1], r["via"]) for r in rows}
    assert ("RegisterPackage", "ingress") in via and ("UpdateLocation", "kafka") in via


def test_update_for_an_unregistered_package_fails_and_does_not_block_the_key(
        tracker: Lab) -> None:
    key = package()
    tracker.broker.produce(TOPIC, key, PARIS)
    wait_until(lambda: len(views.invocations(tracker.admin, service="PackageTracker", key=key,
                                             status="failed")) == 1, 60, "the failed update")
    failed = views.invocations(tracker.admin, service="PackageTracker", key=key)[0]
    assert "package not found" in failed["failure"]
    with pytest.raises(IngressError, match="package not found"):
        info(tracker, key)
    tracker.ingress.call("PackageTracker", "RegisterPackage", {"finalDestination": "Here"},
                         key=key)
    tracker.broker.produce(TOPIC, key, BRUSSELS)
    assert wait_for_locations(tracker, key, 1)["locations"] == [
        {"location": BRUSSELS["location"], "timestamp": BRUSSELS["timestamp"]}]


def test_poison_record_fails_terminally_and_the_next_one_is_applied(tracker: Lab) -> None:
    key = package()
    tracker.ingress.call("PackageTracker", "RegisterPackage", {"finalDestination": "X"}, key=key)
    tracker.broker.produce(TOPIC, key, b"{not json")
    tracker.broker.produce(TOPIC, key, {"timestamp": "t"})  # missing "location"
    tracker.broker.produce(TOPIC, key, PARIS)
    assert wait_for_locations(tracker, key, 1)["locations"][0]["location"] == PARIS["location"]
    failures = [r["failure"] for r in views.invocations(tracker.admin, service="PackageTracker",
                                                        key=key, handler="UpdateLocation")]
    assert any("not valid JSON" in (f or "") for f in failures)
    assert any("'location'" in (f or "") for f in failures)


@pytest.mark.lab_restate
def test_state_survives_a_restate_server_crash(tracker: Lab) -> None:
    key = package()
    tracker.ingress.call("PackageTracker", "RegisterPackage", {"finalDestination": "Y"}, key=key)
    tracker.broker.produce(TOPIC, key, PARIS)
    before = wait_for_locations(tracker, key, 1)
    tracker.server.restart()
    assert info(tracker, key) == before
    tracker.broker.produce(TOPIC, key, BRUSSELS)  # the subscription resumes after the restart
    assert wait_for_locations(tracker, key, 2)["locations"] == [PARIS, BRUSSELS]


def test_malformed_registration_is_a_400(tracker: Lab) -> None:
    with pytest.raises(IngressError) as rejected:
        tracker.ingress.call("PackageTracker", "RegisterPackage", {"destination": "x"},
                             key=package())
    assert rejected.value.status == 400 and "finalDestination" in rejected.value.message


def test_user_text_in_a_log_line_is_escaped_and_clipped(tracker: Lab) -> None:
    """A key or a location with CR/LF (a forged log line), ESC (terminal colours) or NUL, and a
    10 KB one: each log line shows them escaped, at most 80 characters of each."""
    forged = "Paris\r\nINFO Package admin is at the vault\x1b[31m\x00"
    key = f"package-{uuid.uuid4().hex[:6]}-" + "k" * 10_000
    since = logbook.mark()
    tracker.ingress.call("PackageTracker", "RegisterPackage", {"finalDestination": forged},
                         key=key)
    [line] = logbook.lines(since, containing="registered for")
    assert "\r" not in line and "\n" not in line and "\x1b" not in line and "\x00" not in line
    assert "Paris\\r\\nINFO" in line and "\\x1b[31m\\x00" in line
    assert "k" * 80 not in line and "…" in line
    with pytest.raises(IngressError) as refused:  # the 404 does not repeat the key whole
        tracker.ingress.get("PackageTracker", "getPackageInfo", key=key + "x")
    assert refused.value.status == 404 and "k" * 100 not in refused.value.message
