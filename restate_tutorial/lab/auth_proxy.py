"""An auth proxy in front of Restate's ingress: a bearer token checked, then stripped.

Restate keeps an invocation's ingress headers in its journal (the Input entry, readable through
``sys_journal``): a token that reaches the ingress can be read later by anyone with the admin
API. This proxy, on loopback, answers 401 to a request without one of its tokens and forwards
the others without their ``Authorization`` header, naming the caller in ``x-caller`` instead.
"""

from __future__ import annotations

import hmac
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from .processes import LOOPBACK, free_port, serve_http, stop_http

#: Headers that belong to one hop (and the token): never forwarded.
NOT_FORWARDED = {"authorization", "connection", "keep-alive", "transfer-encoding", "host",
                 "content-length", "te", "upgrade", "proxy-authorization", "x-caller"}


class AuthProxy:
    """``tokens`` maps each bearer token to the caller it names."""

    def __init__(self, ingress_url: str, tokens: dict[str, str], port: int | None = None) -> None:
        self.ingress_url = ingress_url.rstrip("/")
        self.tokens = dict(tokens)
        self.port = port or free_port()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def caller(self, authorization: str | None) -> str | None:
        """Who the ``Authorization`` header names, or None (no token, or not one of ours)."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        for known, caller in self.tokens.items():
            if hmac.compare_digest(token.encode(), known.encode()):
                return caller
        return None

    def start(self) -> AuthProxy:
        if self._server is None:
            self._server = serve_http(self.port, _handler(self), "the auth proxy")
        return self

    def stop(self) -> None:
        if self._server is not None:
            stop_http(self._server)
            self._server = None

    def __enter__(self) -> AuthProxy:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def _handler(proxy: AuthProxy) -> type[BaseHTTPRequestHandler]:
    http = httpx.Client(timeout=None)

    class Forward(BaseHTTPRequestHandler):
        def _forward(self) -> None:
            caller = proxy.caller(self.headers.get("authorization"))
            if caller is None:
                self._answer(401, {"message": "a bearer token is needed: send "
                                              "'Authorization: Bearer <token>'"})
                return
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            headers = {k: v for k, v in self.headers.items() if k.lower() not in NOT_FORWARDED}
            try:
                answer = http.request(self.command, proxy.ingress_url + self.path, content=body,
                                      headers={**headers, "x-caller": caller})
            except httpx.TransportError as error:
                self._answer(502, {"message": f"Restate's ingress is not reachable: {error}"})
                return
            self.send_response(answer.status_code)
            for name, value in answer.headers.items():
                if name.lower() not in NOT_FORWARDED | {"content-encoding"}:
                    self.send_header(name, value)
            self.send_header("content-length", str(len(answer.content)))
            self.end_headers()
            self.wfile.write(answer.content)

        def _answer(self, status: int, body: dict[str, str]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _forward

        def log_message(self, format: str, *args: object) -> None:  # quiet: no stderr lines
            pass

    return Forward
