"""A pytest plugin: test your own Restate services against a real restate-server, no Docker.

Installing this package registers it (entry point ``pytest11``). In any project::

    def test_greets(restate_lab, restate_key):
        restate_lab.serve(my_service)            # served once per session, new deployment
        assert restate_lab.ingress.call("Greeter", "greet", {"name": "Ada"}) == "Hello Ada!"

Fixtures: ``restate_lab`` (one lab per test session: restate-server, a Kafka broker, your
services served from the test process; ``.serve``, ``.ingress``, ``.admin``, ``.broker``,
``.subscribe``), ``restate_ingress`` and ``restate_admin`` (its clients), ``restate_key`` (a key
of this test's own, for objects and workflows), and ``restate_views`` (the journal, state and
invocations views).

Two modes catch bugs that a plain run hides (as the Restate SDK's Docker-based harness does):

``--restate-always-replay``
    the server suspends the handler after every journaled step, so every step is replayed:
    code that is not deterministic (a branch on the clock or on ``random()`` outside
    ``ctx.run``) fails with Restate's journal-mismatch error instead of passing by luck.
``--restate-no-retries``
    a failing attempt fails the invocation at once (killed, not retried with backoff), so a
    test fails fast with the handler's error.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from . import views
from .lab import AdminClient, IngressClient, Lab

#: The server settings of each mode (the SDK harness uses the same ones).
ALWAYS_REPLAY = {"RESTATE_WORKER__INVOKER__INACTIVITY_TIMEOUT": "0s"}
NO_RETRIES = {"RESTATE_DEFAULT_RETRY_POLICY__MAX_ATTEMPTS": "1",
              "RESTATE_DEFAULT_RETRY_POLICY__ON_MAX_ATTEMPTS": "kill"}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("restate", "Restate services under test (restate_tutorial)")
    group.addoption("--restate-always-replay", action="store_true",
                    help="replay every journaled step: catches non-deterministic handlers")
    group.addoption("--restate-no-retries", action="store_true",
                    help="fail an invocation at its first failed attempt, instead of retrying")


class TestLab(Lab):
    """A lab whose ``serve`` serves each service object once per session."""

    __test__ = False  # not a test class, despite its name

    def __init__(self, **options: Any) -> None:
        super().__init__([], **options)
        self._serving: set[int] = set()

    def serve(self, *services: Any) -> str:
        if all(id(s) in self._serving for s in services):
            return "already served"
        deployment = super().serve(*services)
        self._serving.update(id(s) for s in services)
        return deployment


@pytest.fixture(scope="session")
def restate_lab(pytestconfig: pytest.Config) -> Iterator[TestLab]:
    settings: dict[str, str] = {}
    if pytestconfig.getoption("restate_always_replay"):
        settings |= ALWAYS_REPLAY
    if pytestconfig.getoption("restate_no_retries"):
        settings |= NO_RETRIES
    with TestLab(server_settings=settings) as lab:
        yield lab


@pytest.fixture
def restate_key(request: pytest.FixtureRequest) -> str:
    """A key no other test uses: per-test isolation of virtual object / workflow state."""
    return f"{request.node.name[:40]}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def restate_ingress(restate_lab: TestLab) -> IngressClient:
    """Calls through Restate's HTTP ingress: ``call``, ``send``, ``attach``, ``get``."""
    return restate_lab.ingress


@pytest.fixture
def restate_admin(restate_lab: TestLab) -> AdminClient:
    """Restate's admin API: ``sql(...)``, deployments, subscriptions, ``wait_for_entry``."""
    return restate_lab.admin


@pytest.fixture
def restate_views() -> ModuleType:
    """The journal / state / invocations views (``views.journal(restate_admin, id)``…)."""
    return views
