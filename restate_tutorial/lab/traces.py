"""A trace collector inside this process: an OTLP/HTTP receiver on 127.0.0.1 that keeps the
spans it is sent in memory — what Jaeger or an OpenTelemetry Collector would receive, without
running one.

restate-server and the service host export to ``collector.endpoint`` (the value of
``OTEL_EXPORTER_OTLP_ENDPOINT``); ``collector.spans(trace_id)`` reads what arrived.
"""

from __future__ import annotations

import gzip
import threading
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from . import processes
from .processes import LOOPBACK


@dataclass(frozen=True)
class Span:
    """One span as received: ids in hex, times in Unix nanoseconds."""

    trace_id: str
    span_id: str
    parent_id: str  # "" for a root span
    name: str
    service: str  # the exporter's resource service.name: "Restate", or the service host's
    start: int
    end: int
    error: bool  # status code ERROR
    attributes: dict[str, Any] = field(default_factory=dict)
    #: Events on the span, in order: (name, Unix nanoseconds, attributes). restate-server
    #: puts the journal's commands on the attempt's span this way.
    events: tuple[tuple[str, int, dict[str, Any]], ...] = ()

    @property
    def seconds(self) -> float:
        return (self.end - self.start) / 1e9


class TraceCollector:
    """Receives OTLP/HTTP trace exports (protobuf or JSON, gzip or not) on a free port."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or processes.free_port()
        self._spans: list[Span] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def endpoint(self) -> str:
        """The base URL, as ``OTEL_EXPORTER_OTLP_ENDPOINT`` takes it (traces: + /v1/traces)."""
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> TraceCollector:
        if self._server is None:
            self._server = processes.serve_http(self.port, _handler_for(self),
                                                "the trace collector")
        return self

    def stop(self) -> None:
        if self._server is not None:
            processes.stop_http(self._server)
            self._server = None

    def spans(self, trace_id: str | None = None) -> list[Span]:
        """The spans received (of one trace), in the order they started."""
        with self._lock:
            kept = [s for s in self._spans if trace_id is None or s.trace_id == trace_id]
        return sorted(kept, key=lambda s: (s.start, s.end))

    def wait_for(self, done: Any, timeout: float = 30.0, what: str = "the spans") -> list[Span]:
        """The spans, once ``done(spans)`` is true (exporters send in batches, a moment after
        the work): else LabError after ``timeout`` seconds."""
        processes.wait_until(lambda: done(self.spans()), timeout, what)
        return self.spans()

    def clear(self) -> None:
        with self._lock:
            self._spans.clear()

    def _received(self, body: bytes, content_type: str) -> None:
        from google.protobuf import json_format
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        request = ExportTraceServiceRequest()
        if content_type.startswith("application/json"):
            json_format.Parse(body, request)
        else:
            request.ParseFromString(body)
        spans = [_span(span, resource.resource) for resource in request.resource_spans
                 for scope in resource.scope_spans for span in scope.spans]
        with self._lock:
            self._spans.extend(spans)

    def __repr__(self) -> str:
        return f"TraceCollector({self.endpoint}, {len(self._spans)} spans)"


def _span(span: Any, resource: Any) -> Span:
    return Span(trace_id=span.trace_id.hex(), span_id=span.span_id.hex(),
                parent_id=span.parent_span_id.hex(), name=span.name,
                service=_attributes(resource.attributes).get("service.name", ""),
                start=span.start_time_unix_nano, end=span.end_time_unix_nano,
                error=span.status.code == 2, attributes=_attributes(span.attributes),
                events=tuple((event.name, event.time_unix_nano,
                              _attributes(event.attributes)) for event in span.events))


def _attributes(pairs: Any) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for pair in pairs:
        kind = pair.value.WhichOneof("value")
        values[pair.key] = getattr(pair.value, kind) if kind else None
    return values


def _handler_for(collector: TraceCollector) -> type[BaseHTTPRequestHandler]:
    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            try:
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                elif self.headers.get("content-encoding") == "deflate":
                    body = zlib.decompress(body)
                if self.path.rstrip("/") == "/v1/traces":
                    collector._received(body, self.headers.get("content-type", ""))
            except Exception as error:  # a malformed export: refused, the collector goes on
                self.send_error(400, f"not an OTLP trace export: {error}"[:200])
                return
            self.send_response(200)  # metrics and logs are accepted and dropped
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:  # no access log under a learner's cell
            pass

    return Receiver

