"""Seeing inside: restate-server's traces and the service host's spans, one trace per request,
received by a real OTLP/HTTP collector; the server's metrics; Restate's tables explaining each
retry — every figure read from what the real server exported."""

from __future__ import annotations

import gzip
import uuid
from collections.abc import Iterator

import httpx
import pytest

from restate_tutorial import tracing, views
from restate_tutorial.lab import IngressError, Lab, LabError
from restate_tutorial.lab.traces import TraceCollector
from restate_tutorial.patterns import checkout, sagas
from restate_tutorial.scenarios import SEED_BOOKING
from restate_tutorial.simulated import travel

GOOD_CARD = "4242424242424242"


@pytest.fixture(scope="module")
def traced() -> Iterator[Lab]:
    with Lab([checkout.checkout, sagas.flights, sagas.car_rentals, sagas.hotels,
              sagas.booking_workflow], traces=True) as lab:
        yield lab


def order(order_id: str | None = None) -> dict[str, object]:
    return {"order_id": order_id or f"o-{uuid.uuid4().hex[:8]}", "card_number": GOOD_CARD,
            "amount": 100}


def spans_named(trace: views.Table, prefix: str) -> list[dict[str, object]]:
    return [row for row in trace if str(row["name"]).startswith(prefix)]


def test_the_original_examples_saga_is_one_trace_under_the_clients_traceparent(
        traced: Lab) -> None:
    trace_id = uuid.uuid4().hex
    answer = httpx.post(f"{traced.server.ingress_url}/BookingWorkflow/{trace_id[:8]}/Run",
                        json=SEED_BOOKING, timeout=30,
                        headers={"traceparent": f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"})
    assert answer.status_code == 402
    [run] = traced.admin.sql("SELECT id FROM sys_invocation WHERE target_service_key ="
                             f" '{trace_id[:8]}'")
    trace = views.trace(traced.traces, run["id"])
    assert trace.title.startswith(f"Trace {trace_id} ")  # the client's trace, carried through
    attempts = [str(row["name"]).split()[1] for row in spans_named(trace, "invocation-attempt")]
    assert attempts == ["BookingWorkflow/{key}/Run", "Flights/Reserve", "CarRentals/Reserve",
                        "CarRentals/Cancel", "Flights/Cancel"]
    steps = [row["name"] for row in trace if "· step" in str(row["span"])]
    assert [s for s in steps if s in ("charge", "refund")] == ["charge", "refund"]
    [end] = spans_named(trace, "invocation-end BookingWorkflow")
    assert end["error"] and "should never be accepted" in str(end["attributes"])
    # Each of the service host's spans hangs under the attempt it served.
    spans = {s.span_id: s for s in traced.traces.spans(trace_id)}
    host = [s for s in spans.values() if s.service == tracing.SERVICE_NAME]
    assert len(host) == 5
    assert all(spans[s.parent_id].name.startswith("invocation-attempt") for s in host)


def test_a_step_failing_twice_leaves_three_attempts_two_failed_and_one_span_per_step(
        traced: Lab) -> None:
    travel.payments.failures.fail_next("charge", 2)
    try:
        invocation = traced.ingress.send("Checkout", "Pay", order())
        assert traced.ingress.attach(invocation, timeout=60)["total"] == 121.0
    finally:
        travel.payments.failures.clear()
    trace = views.trace(traced.traces, invocation)
    attempts = spans_named(trace, "invocation-attempt")
    assert [a["error"] for a in attempts] == [True, True, False]
    # Spans of restate.ext.tracing: none made while replaying, so each step has one.
    assert [row["name"] for row in trace if row["from"] == "service host"
            and not str(row["name"]).startswith("service host")] == [
        "price order", "charge card", "email receipt"]
    # Restate's tables say why: a transient error in the step "charge" (one event: Restate
    # records an error again only when it differs from the last one).
    retries = views.retries(traced.admin, invocation)
    assert [(r["event"], r["step"]) for r in retries] == [("TransientError", "charge")]
    assert "scripted transient failure of charge" in retries[0]["error"]


def test_a_service_host_crash_mid_flight_shows_a_failed_attempt_a_gap_and_the_resumed_one(
        traced: Lab) -> None:
    with traced.paced(0.5):  # the crash lands while the attempt is under way
        invocation = traced.ingress.send("Checkout", "Pay", order())
        traced.admin.wait_for_entry(invocation, "Command: Run")
        traced.host.restart(at_once=True)
    traced.ingress.attach(invocation, timeout=60)
    trace = views.trace(traced.traces, invocation)
    attempts = spans_named(trace, "invocation-attempt")
    # Cut off, then done (one more failed attempt if Restate retried before the host was up).
    assert attempts[0]["error"] and not attempts[-1]["error"], attempts
    first, last = attempts[0], attempts[-1]
    gap = last["at (ms)"] - (first["at (ms)"] + first["took (ms)"])
    assert gap > 0, attempts
    mine = [row["name"] for row in trace if row["from"] == "service host"
            and not str(row["name"]).startswith("service host")]
    assert mine.count("price order") == 1, mine  # the step the crash followed: replayed


def test_restate_servers_counters_move_with_a_burst(traced: Lab) -> None:
    before = traced.server.metrics()
    for _ in range(5):
        traced.ingress.call("Checkout", "Pay", order())
    moved = views.metrics_moved(before, traced.server.metrics(), "restate_ingress_requests")
    assert sum(row["moved by"] for row in moved) >= 5, moved


def test_the_stuck_query_finds_a_paused_payment_and_says_why_also_after_a_restart(
        traced: Lab) -> None:
    run = uuid.uuid4().hex[:8]
    travel.payments.failures.fail_next(f"charge order-recovered-{run}", 2)  # then done
    recovered = traced.ingress.send("Checkout", "Pay", order(f"recovered-{run}"))
    travel.payments.failures.fail_next(f"charge order-stuck-{run}", 10_000)
    stuck = traced.ingress.send("Checkout", "Pay", order(f"stuck-{run}"))
    try:
        traced.ingress.attach(recovered, timeout=30)
        traced.admin.wait_for_status(stuck, "paused")  # Checkout's policy: 5 attempts
        for _ in range(2):  # as found, and after a restart of restate-server
            table = views.stuck(traced.admin)
            assert recovered not in table.column("id")
            [row] = [r for r in table if r["id"] == stuck]
            assert row["status"] == "paused"
            assert row["why"] == "in step 'charge': TransientFailure('scripted transient " \
                                 f"failure of charge order-stuck-{run}')"
            traced.server.restart()
            traced.admin.wait_for_status(stuck, "paused")  # its partition's tables, back
    finally:
        traced.admin.kill(stuck)
        travel.payments.failures.clear()


def test_bad_orders_are_a_400_naming_the_field(traced: Lab) -> None:
    card = f'"card_number": "{GOOD_CARD}"'
    for body, says in ((f'{{"order_id": "a", {card}, "amount": NaN}}', "not a finite"),
                       (f'{{"order_id": "a", {card}, "amount": 1{"0" * 400}}}', "30 digits"),
                       (f'{{"order_id": "a", "card_number": "{"４" * 16}", "amount": 1}}',
                        "12-19 digits"),
                       (f'{{"order_id": "a", {card}, "amount": 0}}', "positive"),
                       (f'{{"order_id": " ", {card}, "amount": 1}}', "1 to 200 characters"),
                       (f'{{"order_id": "\\ud800", {card}, "amount": 1}}', "not valid Unicode"),
                       (f'{{"order_id": "a\\r\\nBcc: x", {card}, "amount": 1}}',
                        "control characters")):
        with pytest.raises(IngressError) as refused:
            traced.ingress.call("Checkout", "Pay", body.encode(), timeout=10)
        assert refused.value.status == 400 and says in refused.value.message, refused.value


def test_the_collector_takes_protobuf_json_and_gzip_and_refuses_garbage() -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    collector = TraceCollector().start()
    try:
        request = ExportTraceServiceRequest()
        span = request.resource_spans.add().scope_spans.add().spans.add()
        span.trace_id, span.span_id, span.name = bytes(16 * [1]), bytes(8 * [2]), "one"
        url = f"{collector.endpoint}/v1/traces"
        protobuf = {"content-type": "application/x-protobuf"}
        assert httpx.post(url, content=request.SerializeToString(), headers=protobuf).is_success
        assert httpx.post(url, content=gzip.compress(request.SerializeToString()),
                          headers={**protobuf, "content-encoding": "gzip"}).is_success
        assert httpx.post(url, json={"resourceSpans": [{"scopeSpans": [{"spans": [{
            "traceId": "01" * 16, "spanId": "03" * 8, "name": "two"}]}]}]}).is_success
        assert httpx.post(url, content=b"\xff garbage", headers=protobuf).status_code == 400
        assert [s.name for s in collector.spans()] == ["one", "one", "two"]
    finally:
        collector.stop()


def test_otel_exporter_otlp_endpoint_sends_both_halves_to_your_collector(
        monkeypatch: pytest.MonkeyPatch) -> None:
    collector = TraceCollector().start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "200")  # restate-server's batches: 5 s
    try:
        with Lab([checkout.checkout]) as lab:
            assert f"traces to {collector.endpoint}" in lab.ready_line()
            lab.ingress.call("Checkout", "Pay", order())
            collector.wait_for(lambda spans: {"Restate", tracing.SERVICE_NAME} <= {
                s.service for s in spans}, 30, "spans from restate-server and the services")
    finally:
        collector.stop()


def test_a_lab_without_an_endpoint_exports_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    lab = Lab([checkout.checkout])
    try:
        assert lab.otlp_endpoint is None and lab.traces is None
        assert "RESTATE_TRACING_ENDPOINT" not in lab.server.cluster_env
        assert "traces to" not in lab.ready_line()
    finally:
        lab.stop()


def test_an_endpoint_that_is_not_a_url_is_one_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318")
    with pytest.raises(LabError, match=r"not an http\(s\) URL.*http://127\.0\.0\.1:4318"):
        Lab([checkout.checkout])


def test_the_same_order_paid_twice_or_at_once_is_charged_once(traced: Lab) -> None:
    from concurrent.futures import ThreadPoolExecutor

    body = order()
    first = traced.ingress.call("Checkout", "Pay", body)
    with ThreadPoolExecutor(3) as racing:
        again = list(racing.map(lambda _: traced.ingress.call("Checkout", "Pay", body), range(3)))
    assert again == [first] * 3
    key = f"order-{body['order_id']}"
    assert travel.payments.ledger.count("charge", payment_id=key) == 1
    assert travel.payments.ledger.count("charge (repeated)", payment_id=key) == 3


def test_a_lab_without_traces_says_how_to_get_them() -> None:
    with pytest.raises(LabError, match="start it with traces=True"):
        views.trace(None, "inv_none")  # lab.traces of a lab started without traces=True
