"""The heavy half of the pytest plugin (``restate_tutorial.testing``): the lab, the SDK's
client and the waits its fixtures hand a test. Imported only when a test uses one of them, so
a pytest run that uses none pays nothing for the plugin."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
from restate.client import Client
from restate.client_types import HttpError

from .lab import IngressError, Lab, LabError, wait_until
from .lab.ingress import error_message


class TestLab(Lab):
    """A lab whose ``serve`` serves services for the test that calls it (gone after it: a
    test that forgets to serve fails alone and in the suite alike), and ``serve_for_session``
    for the whole session (each service object once)."""

    __test__ = False  # not a test class, despite its name

    def __init__(self, no_retries: bool = False, **options: Any) -> None:
        super().__init__([], **options)
        self.no_retries = no_retries
        self._for_session: set[int] = set()
        self._for_this_test: list[str] = []

    def serve(self, *services: Any, journal_value_codec: Any = None) -> str:
        """Serve ``services`` until the end of this test."""
        deployment = super().serve(*services, journal_value_codec=journal_value_codec)
        self._for_this_test.append(deployment)
        return deployment

    def serve_for_session(self, *services: Any) -> str:
        """Serve ``services`` for every test of the session (once per service object)."""
        if all(id(s) in self._for_session for s in services):
            return "already served"
        deployment = super().serve(*services)
        self._for_session.update(id(s) for s in services)
        return deployment

    def end_test(self) -> None:
        """Unserve what this test served: its deployments leave Restate and the host."""
        for deployment in self._for_this_test:
            self.mounts.apps.pop(self.served.pop(deployment, ""), None)
            self.admin.remove_deployment(deployment)
        self._for_this_test.clear()


class _LabClient(Client):
    """The SDK's client, failing as the lab's ingress client does: an error answer is an
    IngressError with the handler's own message, no answer in time a LabError saying what
    Restate's records show of the invocation."""

    def __init__(self, lab: Lab) -> None:
        super().__init__(httpx.AsyncClient(base_url=lab.ingress.url, http2=True,
                                           timeout=lab.ingress.timeout))
        self._lab = lab

    async def post(self, /, **call: Any) -> bytes:  # type: ignore[override]
        target = "/" + "/".join(str(call[part]) for part in ("service", "key", "handler")
                                if call.get(part))
        try:
            return await super().post(**call)
        except HttpError as error:
            raise IngressError(error.status_code, error_message(error.body or error.message),
                               target) from None
        except httpx.TimeoutException:
            said = self._lab.admin.describe_unfinished(target.removeprefix("/"))
            raise LabError(f"No answer from {target} within {self._lab.ingress.timeout:g} s;"
                           f" Restate keeps running it. {said}".rstrip()) from None


class SdkClient:
    """The SDK's typed client for a plain, synchronous test: each of its methods
    (``service_call(handler, arg)``, ``object_call(handler, key, arg)``, ``workflow_send``…)
    is run to its end and returns what the SDK's returns; it waits the plugin's call timeout
    and fails as ``restate_lab.ingress`` does. In an async test, use
    ``restate.create_client(restate_lab.ingress.url)`` itself."""

    def __init__(self, lab: Lab) -> None:
        self._loop = asyncio.new_event_loop()
        self._client = _LabClient(lab)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._client, name)

        def run(*args: Any, **kwargs: Any) -> Any:
            __tracebackhide__ = True
            try:
                return self._loop.run_until_complete(method(*args, **kwargs))
            except LabError as error:  # the traceback starts at the test's line
                raise error.with_traceback(None) from None

        return run

    def close(self) -> None:
        self._loop.run_until_complete(self._client.client.aclose())
        self._loop.close()


class Waiter:
    """Waiting without sleeps: until an invocation ends, or until a condition holds."""

    def __init__(self, lab: Lab) -> None:
        self._lab = lab

    def until_ended(self, invocation_id: str, timeout: float = 30.0) -> Any:
        """The invocation's result once it has ended; raises its IngressError if it failed,
        and a LabError with Restate's record of it if it has not ended within ``timeout``."""
        __tracebackhide__ = True
        try:
            self._lab.admin.wait_until_ended(invocation_id, timeout=timeout)
        except LabError:
            [row] = self._lab.admin.sql("SELECT status, retry_count, last_failure FROM "
                                        f"sys_invocation WHERE id = '{invocation_id}'") or [{}]
            failure = (row.get("last_failure") or "no failure").split("\n", 1)[0]
            raise LabError(f"{invocation_id} has not ended within {timeout:g} s: it is "
                           f"{row.get('status', 'unknown')}, {row.get('retry_count') or 0} "
                           f"retries, last failure: {failure}") from None
        return self._lab.ingress.attach(invocation_id)

    def until(self, condition: Callable[[], bool], timeout: float = 30.0,
              what: str = "the condition") -> None:
        """Poll ``condition`` until it is true; fail naming ``what`` after ``timeout`` s."""
        wait_until(condition, timeout, what)
