"""Many at once: FareSearch fans out to five airlines and fans in by a deadline; AirlinePermits
keeps each airline at its limit across concurrent searches, crashes and cancellations; the
token bucket spaces messages — all on the quote API's and the mailer's ledgers."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
import restate

from restate_tutorial import views
from restate_tutorial.lab import IngressError, Lab, wait_until
from restate_tutorial.lab.admin import sql_string
from restate_tutorial.patterns.fan_out import MAILS_PER_SECOND, airlines, quote_unlimited
from restate_tutorial.simulated import mailer, quotes
from restate_tutorial.views import parse_time

pytestmark = pytest.mark.usefixtures("fresh_ledgers")
ROUTE = "AMS-LIS"


def search(lab: Lab, deadline: float = 30, handler: str = "Search", **options: Any) -> Any:
    return lab.ingress.call("FareSearch", handler,
                            {"route": ROUTE, "deadline_seconds": deadline}, **options)


def quotes_of(lab: Lab, search_id: str) -> list[dict[str, Any]]:
    """The Airlines/Quote invocations one search made."""
    return lab.admin.sql("SELECT id, status, running_at, completed_at, completion_result,"
                         " completion_failure FROM sys_invocation"
                         f" WHERE invoked_by_id = {sql_string(search_id)}"
                         " AND target_service_name = 'Airlines'")


def searches_in_flight(lab: Lab, count: int, **body: Any) -> list[str]:
    """Start ``count`` searches at once (sent: their ids survive a crash of the ingress)."""
    return [lab.ingress.send("FareSearch", "Search", {"route": ROUTE, **body})
            for _ in range(count)]


def permits_free(lab: Lab) -> bool:
    return all(lab.ingress.get("AirlinePermits", "Status", key=airline)
               == {"limit": quotes.CAPACITY, "held": 0, "queued": 0}
               for airline in quotes.AIRLINES)


def test_every_airline_is_asked_at_once_and_the_best_fare_wins(lab: Lab) -> None:
    search_id = lab.ingress.send("FareSearch", "Search", {"route": ROUTE})
    found = lab.ingress.attach(search_id)
    assert found["best"] == {"airline": "TP", "fare": 190}
    assert [f["fare"] for f in found["fares"]] == sorted(quotes.BASE_FARES.values())
    assert (found["partial"], found["late"], found["failed"]) == (False, [], [])
    assert quotes.ledger.count("quote") == 5
    # Overlapping: every quote started before the first one ended.
    calls = quotes_of(lab, search_id)
    assert len(calls) == 5
    assert max(parse_time(c["running_at"]) for c in calls) \
        < min(parse_time(c["completed_at"]) for c in calls)


def test_the_deadline_answers_what_arrived_and_cancels_the_rest(lab: Lab) -> None:
    quotes.script("TP", latency=30)
    started = time.monotonic()
    # 3 s: ten times a quote's latency, so that on a loaded machine only TP is late.
    search_id = lab.ingress.send("FareSearch", "Search", {"route": ROUTE, "deadline_seconds": 3})
    found = lab.ingress.attach(search_id)
    assert time.monotonic() - started < 20  # not TP's 30 s
    assert found["partial"] and found["late"] == ["TP"]
    assert found["best"] == {"airline": "IB", "fare": 205} and len(found["fares"]) == 4
    wait_until(lambda: any(c.get("completion_failure") == "[409] cancelled"
                           for c in quotes_of(lab, search_id)), 30, "TP's quote cancelled")
    wait_until(lambda: permits_free(lab), 30, "TP's permit back")
    assert quotes.ledger.count("quote", airline="TP") == 0


def test_an_airline_failing_for_good_does_not_fail_the_search(lab: Lab) -> None:
    quotes.script("IB", flies=False)
    found = search(lab)
    assert found["failed"] == [{"airline": "IB", "error": f"IB does not fly {ROUTE}"}]
    assert not found["partial"] and len(found["fares"]) == 4
    assert quotes.ledger.count("no such route", airline="IB") == 1  # not retried


def test_the_same_idempotency_key_twice_asks_the_airlines_once(lab: Lab) -> None:
    key = f"search-{uuid.uuid4().hex[:8]}"
    assert search(lab, idempotency_key=key) == search(lab, idempotency_key=key)
    assert quotes.ledger.count("quote") == 5


@pytest.mark.lab_restate
def test_restate_crashing_mid_fan_out_repeats_no_completed_call(lab: Lab) -> None:
    quotes.script("TP", latency=3)
    search_id = lab.ingress.send("FareSearch", "Search", {"route": ROUTE})
    # Four quote calls ended in Restate's records (not only at the airlines: a quote answered
    # but not yet journaled when the SIGKILL lands is asked again, with its request id).
    wait_until(lambda: sum(c["status"] == "completed" for c in quotes_of(lab, search_id)) == 4,
               30, "four airlines to answer")
    lab.server.restart()
    found = lab.ingress.attach(search_id)
    assert len(found["fares"]) == 5 and not found["partial"]
    for airline in quotes.AIRLINES:  # TP may be asked again with its request id: one quote
        assert quotes.ledger.count("quote", airline=airline) == 1, airline
    assert quotes.ledger.count("quote (repeated)", airline="KL") == 0


def test_the_service_host_crashing_mid_fan_out_repeats_no_completed_call(lab: Lab) -> None:
    quotes.script("TP", latency=3)
    search_id = lab.ingress.send("FareSearch", "Search", {"route": ROUTE})
    wait_until(lambda: quotes.ledger.count("quote") == 4, 30, "four airlines to answer")
    lab.host.restart()
    assert len(lab.ingress.attach(search_id)["fares"]) == 5
    assert all(quotes.ledger.count("quote", airline=a) == 1 for a in quotes.AIRLINES)
    wait_until(lambda: permits_free(lab), 30, "every permit back")


def test_without_permits_many_searches_overload_the_airlines(lab: Lab) -> None:
    for airline in quotes.AIRLINES:
        quotes.script(airline, latency=0.2)
    threads = [threading.Thread(target=search, args=(lab, 60, "SearchUnlimited"))
               for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert max(quotes.peaks().values()) > quotes.CAPACITY
    assert quotes.ledger.count("429") > 0 and quotes.ledger.count("quote") == 50


@pytest.mark.lab_restate
def test_permits_hold_the_limit_for_50_searches_through_a_restate_crash(lab: Lab) -> None:
    for airline in quotes.AIRLINES:
        quotes.script(airline, latency=0.05)
    ids = searches_in_flight(lab, 50, deadline_seconds=120)
    wait_until(lambda: quotes.ledger.count("quote") >= 50, 60, "a fifth of the quotes")
    lab.server.restart()
    results = [lab.ingress.attach(search_id, timeout=120) for search_id in ids]
    assert all(len(r["fares"]) == 5 and not r["partial"] for r in results)
    # Never more. (Not "exactly": on a loaded machine a permit can be back before the next
    # quote starts, so an airline may never have had two at once.)
    assert max(quotes.peaks().values()) <= quotes.CAPACITY
    assert quotes.ledger.count("429") == 0
    assert quotes.ledger.count("quote") == 250
    wait_until(lambda: permits_free(lab), 30, "every permit back")


# Restate's own flow control (preview): calls in a scope, limited per limit key by a rule.
scoped_search = restate.Service("ScopedFareSearch")
FLOW_CONTROL = {"RESTATE_EXPERIMENTAL_ENABLE_PROTOCOL_V7": "true",
                "RESTATE_EXPERIMENTAL_ENABLE_VQUEUES": "true"}


@scoped_search.handler(name="Search")
async def scoped_quotes(ctx: restate.Context, count: int) -> int:
    calls = [ctx.scope("airlines").service_call(quote_unlimited, limit_key="KL",
                                                arg={"airline": "KL", "route": ROUTE})
             for _ in range(count)]
    await restate.gather(*calls)
    return len([await call for call in calls])


@pytest.mark.lab_restate
def test_restates_own_flow_control_holds_the_limit_behind_experimental_flags() -> None:
    """What restate-server 1.7.12 does with ``ctx.scope``/``limit_key``: with both experimental
    flags (set on a new cluster) and the rule ``airlines/KL`` at concurrency 2, 50 calls from
    five invocations reach KL at most two at a time, through a SIGKILL."""
    quotes.script("KL", latency=0.05)
    with Lab([scoped_search, airlines], server_settings=FLOW_CONTROL) as own:
        own.cli("rules", "set", "airlines/KL", "--concurrency", str(quotes.CAPACITY), "--yes")
        ids = [own.ingress.send("ScopedFareSearch", "Search", 10) for _ in range(5)]
        wait_until(lambda: quotes.ledger.count("quote") >= 10, 60, "ten quotes")
        own.server.restart()
        assert [own.ingress.attach(search_id, timeout=60) for search_id in ids] == [10] * 5
    assert quotes.peak("KL") == quotes.CAPACITY and quotes.ledger.count("429") == 0
    assert quotes.ledger.count("quote") == 50


def test_a_cancelled_search_leaks_no_permit_waiting_or_holding(lab: Lab) -> None:
    quotes.script("TP", latency=30)
    ids = searches_in_flight(lab, 4)  # two hold TP's permits, two wait in its queue
    wait_until(lambda: lab.ingress.get("AirlinePermits", "Status", key="TP")["queued"] == 2,
               30, "two TP quotes queued")
    for search_id in ids:
        lab.admin.cancel(search_id)
    assert all(lab.ingress.outcome(search_id).status == 409 for search_id in ids)
    wait_until(lambda: permits_free(lab), 30, "every permit back")
    quotes.script("TP", latency=0.1)
    assert len(search(lab, deadline=20)["fares"]) == 5  # TP is not blocked by a lost permit


def test_messages_are_paced_by_the_token_bucket(lab: Lab) -> None:
    to = f"reader-{uuid.uuid4().hex[:8]}"
    started = time.time()
    ids = [lab.ingress.send("PacedMailer", "Send", {"to": to, "subject": str(i), "body": "…"})
           for i in range(5)]
    lab.admin.wait_until_ended(*ids)
    sent = sorted(e["at"] for e in mailer.ledger.entries("notify", to=to))
    assert len(sent) == 5
    for number, moment in enumerate(sent):  # never ahead of the bucket: one token per 0.5 s
        assert moment >= started + number / MAILS_PER_SECOND - 0.01


@pytest.mark.parametrize(("body", "complaint"), [
    ({}, "'route'"),
    ({"route": "ams-lis"}, "two airport codes"),
    ({"route": "ＡＭＳ-LIS"}, "two airport codes"),
    ({"route": "AMS-LIS\n"}, "two airport codes"),
    ({"route": "AMS-LIS", "deadline_seconds": 0}, "deadline_seconds"),
    ({"route": "AMS-LIS", "deadline_seconds": "5"}, "deadline_seconds"),
    ({"route": "AMS-LIS", "deadline_seconds": True}, "deadline_seconds"),
    ({"route": "AMS-LIS", "deadline_seconds": 10**400}, "more than 30 digits"),
    ({"route": "AMS-LIS", "deadline_seconds": 1e9}, "from 0.1 to 300"),
    ({"route": "AMS-LIS", "deadline_seconds": 1e-9}, "from 0.1 to 300"),
    ('{"route": "AMS-LIS", "deadline_seconds": NaN}', "not a finite number"),
    ({"route": "AMS-LIS" * 1000}, "more than the limit"),
    ('{"route": "\\ud800"}', "not valid Unicode"),
])
def test_a_malformed_search_is_400_and_asks_no_airline(lab: Lab, body: Any,
                                                        complaint: str) -> None:
    with pytest.raises(IngressError) as refused:
        lab.ingress.call("FareSearch", "Search",  # a str: malformed JSON, as it is
                         body.encode() if isinstance(body, str) else body)
    assert refused.value.status == 400 and complaint in refused.value.message
    assert quotes.ledger.count() == 0


@pytest.mark.parametrize(("service", "handler", "body", "complaint"), [
    ("Airlines", "Quote", {"airline": "XX", "route": ROUTE}, "no airline 'XX'"),
    ("RateLimiter", "Take", {"per_second": 0}, "per_second"),
    ("RateLimiter", "Take", {"per_second": 2, "burst": True}, "burst"),
    ("RateLimiter", "Take", {"per_second": 0.01}, "takes 2 a second"),  # the mailer's bucket
    ("PacedMailer", "Send", {"to": "ada"}, "'subject'"),
    ("AirlinePermits", "Acquire", "not-an-awakeable", "not an awakeable id"),
    ("AirlinePermits", "Release", "sign_1", "not an awakeable id"),
    ("PriceWatch", "Tick", None, "generation must be a whole number"),
    ("PriceWatch", "Tick", "1", "generation must be a whole number"),
    ("CronJob", "Tick", None, "malformed slot"),
    ("CronJob", "Tick", {"generation": True, "at": 1}, "'generation'"),
    ("CronJob", "Tick", {"generation": 1, "at": "now"}, "'at'"),
])
def test_the_building_blocks_refuse_malformed_input(lab: Lab, service: str, handler: str,
                                                    body: Any, complaint: str) -> None:
    """From another handler (the private ones are not reachable otherwise): a clear 400 (a
    409 for a rate that is not the mailer bucket's), never a retry that holds the key."""
    key = None if service in ("Airlines", "PacedMailer") else f"k-{uuid.uuid4().hex[:6]}"
    if complaint == "takes 2 a second":
        key = "mailer"
    with pytest.raises(IngressError) as refused:
        lab.ingress.call("Relay", "call", {"service": service, "handler": handler, "key": key,
                                           "body": body})
    expected = 409 if key == "mailer" else 400
    assert refused.value.status == expected and complaint in refused.value.message
    if service in ("AirlinePermits", "PriceWatch", "CronJob"):  # refused before any change
        assert views.state(lab.admin, service, key).rows == []
    if service in ("PriceWatch", "CronJob"):  # and the key is not held: Stop answers at once
        lab.ingress.call(service, "Stop", key=key)


@pytest.mark.parametrize(("service", "handler", "key"), [
    ("Airlines", "Quote", None), ("Airlines", "QuoteUnlimited", None),
    ("AirlinePermits", "Acquire", "KL"), ("AirlinePermits", "Release", "KL"),
    ("RateLimiter", "Take", "mailer"), ("PriceWatch", "Tick", "KL1"), ("CronJob", "Tick", "j"),
    ("TripReminders", "Remind", "trip-1"), ("Flights", "Cancel", None),
    ("CarRentals", "Reserve", None), ("Hotels", "Confirm", None),
])
def test_an_internal_handler_is_private_to_the_ingress(lab: Lab, service: str, handler: str,
                                                       key: str | None) -> None:
    """Only Restate and other handlers call these: a client at the ingress is refused, and
    nothing runs."""
    def invocations() -> int:
        return int(lab.admin.sql(
            f"SELECT count(*) AS n FROM sys_invocation WHERE target_service_name = '{service}'"
            f" AND target_handler_name = '{handler}'")[0]["n"])

    before = invocations()
    with pytest.raises(IngressError) as refused:
        lab.ingress.call(service, handler, {"per_second": 0.001}, key=key)
    assert 400 <= refused.value.status < 500, refused.value
    assert invocations() == before
