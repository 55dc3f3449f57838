"""HTTP to whichever node of a cluster is up."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx


class FailoverHttp:
    """Sends each request to the first of ``urls`` that accepts the connection.

    Only a refused connection moves on to the next node: a request that reached a node is
    never sent again (it may have had an effect).
    """

    def __init__(self, urls: str | Sequence[str], timeout: float) -> None:
        self.urls = [u.rstrip("/") for u in ([urls] if isinstance(urls, str) else urls)]
        self._current = 0
        self._client = httpx.Client(timeout=timeout)

    @property
    def url(self) -> str:
        """The node that answered last."""
        return self.urls[self._current]

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        error: httpx.ConnectError | None = None
        for step in range(len(self.urls)):
            index = (self._current + step) % len(self.urls)
            try:
                response = self._client.request(method, self.urls[index] + path, **kwargs)
            except httpx.ConnectError as refused:
                error = refused
                continue
            self._current = index
            return response
        assert error is not None
        raise error

    def close(self) -> None:
        self._client.close()
