"""HTTP to whichever node of a cluster is up — and answering."""

from __future__ import annotations

import functools
import ssl
import time
from collections.abc import Sequence
from typing import Any

import httpx

#: How long a node may take to answer a request that is safe to send again elsewhere before
#: the next node is tried. A frozen node (SIGSTOP, a long GC pause, a VM snapshot) still
#: accepts connections — the kernel does that — but never answers.
SAFE_ATTEMPT_SECONDS = 5.0
#: How long a node may take to answer its health check before a request that must not be sent
#: twice goes to the next node instead.
PROBE_SECONDS = 1.0


@functools.cache
def tls() -> ssl.SSLContext:
    """The system's CA certificates, loaded once per process: an HTTP client made without it
    (as each ``httpx.get`` makes one) loads them again, ~65 ms of CPU."""
    return httpx.create_ssl_context()


class FailoverHttp:
    """Sends each request to the first of ``urls`` that is up.

    Any request moves on to the next node when its node refuses the connection. A request that
    is safe to repeat (a GET such as attach, a SQL query, anything with an ``idempotency-key``)
    also moves on when its node does not answer within SAFE_ATTEMPT_SECONDS, until its own
    timeout is spent. Any other request may have had an effect once it reached a node, so it is
    never sent again; with several nodes it goes only to a node that answered ``health_path``
    within PROBE_SECONDS just before (one extra round trip).
    """

    def __init__(self, urls: str | Sequence[str], timeout: float,
                 health_path: str | None = None) -> None:
        self.urls = [u.rstrip("/") for u in ([urls] if isinstance(urls, str) else urls)]
        self.health_path = health_path
        self._current = 0
        self._client = httpx.Client(timeout=timeout, verify=tls())
        self._timeout = timeout

    @property
    def url(self) -> str:
        """The node that answered last."""
        return self.urls[self._current]

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        timeout = kwargs.pop("timeout", None) or self._timeout
        retry_silence = len(self.urls) > 1 and (
            method == "GET" or path == "/query"
            or "idempotency-key" in (kwargs.get("headers") or {}))
        deadline = time.monotonic() + timeout
        error: httpx.TransportError | None = None
        while True:
            # One round over the nodes, starting with the one that answered last. A node
            # that refuses the connection is skipped; a silent one too, when safe.
            silent_in_round = False
            for step in range(len(self.urls)):
                index = (self._current + step) % len(self.urls)
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    if (len(self.urls) > 1 and not retry_silence and self.health_path
                            and not self._answers(self.urls[index])):
                        continue
                    response = self._client.request(
                        method, self.urls[index] + path, **kwargs,
                        timeout=min(left, SAFE_ATTEMPT_SECONDS) if retry_silence else left)
                except httpx.ConnectError as refused:
                    error = refused
                    continue
                except httpx.TimeoutException as silent:
                    if not retry_silence:
                        raise
                    error, silent_in_round = silent, True
                    continue
                self._current = index
                return response
            # Another round only while a node is alive but slow (a long attach, a busy node).
            if not (silent_in_round and time.monotonic() < deadline):
                raise error or httpx.ConnectError(f"none of {', '.join(self.urls)} answers")

    def _answers(self, url: str) -> bool:
        try:
            return self._client.get(url + str(self.health_path), timeout=PROBE_SECONDS).is_success
        except httpx.TransportError:
            return False

    def close(self) -> None:
        self._client.close()
