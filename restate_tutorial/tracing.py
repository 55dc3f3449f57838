"""OpenTelemetry for the tutorial's services: their spans join Restate's own, in one trace.

    client ── traceparent ──▶ restate-server: ingress ▸ invocation-start ▸ invocation-attempt …
                                                    │ (the attempt's traceparent, in its request)
                                                    ▼
                              service host: one span per attempt  ▸ your spans (``tracer``)

``export_to(endpoint)`` sends this process's spans to an OTLP/HTTP endpoint (the value of
``OTEL_EXPORTER_OTLP_ENDPOINT``; ``None``: nowhere — then a span costs next to nothing).
``tracer`` is restate.ext.tracing's: a span started in a handler is a child of Restate's
attempt span, and no span is made while the handler replays its journal — a step's span
appears once, however often the handler is replayed. ``traced(app)`` adds the service host's
span per attempt.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from restate.ext.tracing import RestateTracer

SERVICE_NAME = "restate-tutorial services"
#: For your spans in a handler: ``with tracer.start_as_current_span("charge"): …``
tracer = RestateTracer(trace.get_tracer("restate_tutorial"))
_target: dict[str, Any] = {}  # where spans go now: {endpoint: its exporter}, or nowhere


def export_to(endpoint: str | None) -> None:
    """Send this process's spans to ``endpoint`` (OTLP/HTTP base URL), or nowhere."""
    _target.clear()
    if endpoint is None:
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    _install_once()
    _target[endpoint] = OTLPSpanExporter(endpoint=otlp_traces_url(endpoint), timeout=5)


def stop_exporting_to(endpoint: str) -> None:
    """Send the spans ended so far, then none more — if they went to ``endpoint``."""
    if endpoint in _target:
        flush()
        _target.clear()


def otlp_traces_url(endpoint: str) -> str:
    """``OTEL_EXPORTER_OTLP_ENDPOINT``'s URL for traces: the base URL + /v1/traces."""
    if not endpoint.startswith(("http://", "https://")):
        raise ValueError(f"OTEL_EXPORTER_OTLP_ENDPOINT={endpoint!r} is not an http(s) URL: set "
                         "it to your collector's OTLP/HTTP base URL, e.g. http://127.0.0.1:4318.")
    return endpoint.rstrip("/") + "/v1/traces"


def flush() -> None:
    """Send the spans ended so far now (the exporter batches them for a moment)."""
    provider = trace.get_tracer_provider()
    if hasattr(provider, "force_flush"):
        provider.force_flush(5_000)


def _install_once() -> None:
    """The process's tracer provider (OpenTelemetry allows one), exporting through
    ``_target``: labs started one after another in a process export where the latest says."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return

    class ToTarget(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            exporter = next(iter(_target.values()), None)
            return exporter.export(spans) if exporter else SpanExportResult.SUCCESS

    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
    provider.add_span_processor(BatchSpanProcessor(ToTarget(), schedule_delay_millis=100))
    trace.set_tracer_provider(provider)


def traced(app: Any) -> Any:
    """``app`` (an ASGI app of Restate services) making a span for each attempt it serves,
    a child of the attempt's span in restate-server — while spans are exported."""
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    host_tracer = trace.get_tracer("restate_tutorial.service_host")
    propagator = TraceContextTextMapPropagator()

    async def with_a_span(scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not _target or "/invoke/" not in path:
            await app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        target = path.split("/invoke/", 1)[1]
        with host_tracer.start_as_current_span(
                f"service host {target}", context=propagator.extract(headers),
                kind=trace.SpanKind.SERVER, attributes={"restate.target": target}):
            await app(scope, receive, send)

    return with_a_span
