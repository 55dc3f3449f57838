"""Calling handlers through Restate's HTTP ingress: call, send, attach."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote, unquote

import httpx

from .errors import IngressError, LabError
from .failover import FailoverHttp


class IngressClient:
    """Restate's ingress at ``urls`` (several for a cluster: the first node that is up)."""

    def __init__(self, urls: str | Sequence[str], timeout: float = 30.0,
                 describe: Callable[[str], str] | None = None) -> None:
        self.timeout = timeout
        # What Restate's records say of an unfinished call (``target`` → one line), for the
        # message of a call that got no answer in time.
        self.describe = describe
        self._http = FailoverHttp(urls, timeout, health_path="/restate/health")

    @property
    def url(self) -> str:
        """The ingress URL of the node that answered last."""
        return self._http.url

    @staticmethod
    def path(service: str, handler: str, key: str | None = None) -> str:
        """``/Service/handler`` or ``/Object/key/handler``."""
        return f"/{service}/{quote(key, safe='')}/{handler}" if key is not None \
            else f"/{service}/{handler}"

    def _request(self, method: str, path: str, body: Any, timeout: float | None,
                 idempotency_key: str | None) -> Any:
        __tracebackhide__ = True  # a failing test shows Restate's answer, not this client
        headers = {"idempotency-key": idempotency_key} if idempotency_key else {}
        kwargs: dict[str, Any] = {"headers": headers, "timeout": timeout or self.timeout}
        if isinstance(body, bytes):  # sent as it is (e.g. malformed JSON, on purpose)
            kwargs["content"] = body
            headers["content-type"] = "application/json"
        elif body is not None:
            kwargs["json"] = body
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise LabError(f"No answer from {path} within {kwargs['timeout']:g} s; Restate keeps "
                           "running it: use send() + attach(), or see the invocations view."
                           + self._described(path)) from None
        except httpx.TransportError as error:
            raise LabError(f"Restate ingress at {self.url} is not reachable ({error}): is the lab "
                           "started?") from None
        if response.is_error:
            raise IngressError(response.status_code, error_message(response.text), path)
        try:
            return response.json() if response.content else None
        except ValueError:  # an answer that is not JSON (e.g. sealed by a codec): its bytes
            return response.content

    def _described(self, path: str) -> str:
        if self.describe is None or path.startswith("/restate/"):
            return ""
        try:
            said = self.describe(unquote(path.removeprefix("/")))
        except LabError:
            return ""
        return f" {said}." if said else ""

    def call(self, service: str, handler: str, body: Any = None, *, key: str | None = None,
             timeout: float | None = None, idempotency_key: str | None = None) -> Any:
        """Invoke and wait for the result. The body is sent as JSON (a ``str`` as a JSON
        string); ``bytes`` are sent as they are."""
        __tracebackhide__ = True
        return self._request("POST", self.path(service, handler, key), body, timeout,
                             idempotency_key)

    def get(self, service: str, handler: str, *, key: str | None = None) -> Any:
        """Invoke a handler that takes no input with a plain GET (as ``curl URL`` does)."""
        __tracebackhide__ = True
        return self._request("GET", self.path(service, handler, key), None, None, None)

    def send(self, service: str, handler: str, body: Any = None, *, key: str | None = None,
             idempotency_key: str | None = None, delay: str | None = None) -> str:
        """Enqueue an invocation without waiting (to start after ``delay``, e.g. "10m", if
        given); returns its invocation id."""
        __tracebackhide__ = True
        send = "/send" + (f"?delay={quote(delay)}" if delay else "")
        answer = self._request("POST", self.path(service, handler, key) + send, body, None,
                               idempotency_key)
        return str(answer["invocationId"])

    def attach(self, invocation_id: str, timeout: float | None = None) -> Any:
        """Wait for a (sent) invocation to finish and return its result."""
        __tracebackhide__ = True
        return self._request("GET", f"/restate/invocation/{invocation_id}/attach", None,
                             timeout, None)

    def outcome(self, invocation_id: str, timeout: float | None = None) -> Any:
        """Like :meth:`attach`, but a failed invocation's IngressError is returned, not raised:
        the result, or how it failed (``.status``, ``.message``)."""
        __tracebackhide__ = True
        try:
            return self.attach(invocation_id, timeout)
        except IngressError as failed:
            return failed

    def resolve_awakeable(self, awakeable_id: str, value: Any = None) -> None:
        """Complete an awakeable (what an external system does to wake the invocation that
        waits on it). Resolving it again changes nothing."""
        __tracebackhide__ = True
        self._request("POST", f"/restate/awakeables/{quote(awakeable_id, safe='')}/resolve",
                      json.dumps(value).encode(), None, None)

    def close(self) -> None:
        self._http.close()


def error_message(body: str) -> str:
    """Restate's (or the handler's) message in an error answer: its JSON "message", else the
    body as it is."""
    try:
        return str(json.loads(body).get("message", body))
    except (ValueError, AttributeError):
        return body
