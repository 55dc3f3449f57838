"""A pytest plugin: test your own Restate services against a real restate-server, no Docker.

Installing this package registers it (entry point ``pytest11``). In any project::

    def test_greets(restate_lab, restate_key):
        restate_lab.serve(my_service)            # served for this test (serve_for_session: all)
        assert restate_lab.ingress.call("Greeter", "greet", {"name": "Ada"}) == "Hello Ada!"

Fixtures: ``restate_lab`` (one lab per test session: restate-server, a Kafka broker, your
services served from the test process; ``.serve``, ``.ingress``, ``.admin``, ``.broker``,
``.subscribe``), ``restate_ingress`` and ``restate_admin`` (its clients), ``restate_client``
(the SDK's own typed client, ``restate.create_client``, bound to the lab: call handlers by
reference), ``restate_wait`` (wait until an invocation ends, or a condition holds),
``restate_key`` (a key of this test's own, for objects and workflows), ``restate_views``
(the journal, state and invocations views), and ``restate_crash_test`` (your scenario crashed
at every journal entry, restate-server and service host in turn, checked after each crash:
``restate_crash_test(start, check)``, see ``restate_tutorial.crashes``).

A call through ``restate_lab.ingress`` waits ``--restate-call-timeout`` seconds (ini:
``restate_call_timeout``; default 30) and then fails saying what Restate's records show of the
invocation (status, retries, last failure).

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

import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # the heavy half is imported by the fixtures, when a test uses one
    from .crashes import CrashReport
    from .lab import AdminClient, IngressClient, Lab
    from .testing_lab import SdkClient, TestLab, Waiter

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
    group.addoption("--restate-call-timeout", type=float, default=None, metavar="SECONDS",
                    help="how long a call through restate_lab.ingress waits for its answer "
                         "(default: the restate_call_timeout ini setting, else 30)")
    parser.addini("restate_call_timeout", "seconds a call through restate_lab.ingress waits "
                  "for its answer", default="30")


class _Mismatches(logging.Handler):
    """The SDK's reports of a journal mismatch (Restate error 570) during one test."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "mismatch" in message.lower() or "[570" in message:
            self.seen.append(message.split("\n", 1)[0])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    """A test that uses the lab fails if any invocation hit a journal mismatch, even one that
    a retry then got past: the code is not deterministic, and passed by luck."""
    if "restate_lab" not in getattr(item, "fixturenames", ()):
        return (yield)
    mismatches = _Mismatches()
    logging.getLogger("restate").addHandler(mismatches)
    try:
        result = yield
    finally:
        logging.getLogger("restate").removeHandler(mismatches)
    if mismatches.seen:
        pytest.fail(f"an invocation hit a journal mismatch during this test (Restate replayed "
                    f"a different code path; a retry may have hidden it): {mismatches.seen[0]}",
                    pytrace=False)
    return result


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    """What the test served is gone after it."""
    lab = getattr(item, "funcargs", {}).get("restate_lab")
    if hasattr(lab, "end_test"):
        lab.end_test()


@pytest.fixture(scope="session")
def restate_lab(pytestconfig: pytest.Config, request: pytest.FixtureRequest
                ) -> Iterator[TestLab]:
    """One lab for the session. If a test failed, restate-server's log is kept afterwards
    (its path is printed at the end): the failures' "see its log" point there."""
    from .lab.server import RestateServer
    from .testing_lab import TestLab

    settings: dict[str, str] = {}
    if pytestconfig.getoption("restate_always_replay"):
        settings |= ALWAYS_REPLAY
    if pytestconfig.getoption("restate_no_retries"):
        settings |= NO_RETRIES
    option = pytestconfig.getoption("restate_call_timeout")
    with TestLab(server_settings=settings,
                 no_retries=pytestconfig.getoption("restate_no_retries")) as lab:
        lab.ingress.timeout = float(option if option is not None
                                    else pytestconfig.getini("restate_call_timeout"))
        yield lab
        if request.session.testsfailed and isinstance(lab.server, RestateServer):
            kept = Path(tempfile.gettempdir()) / f"restate-server-{os.getpid()}.log"
            shutil.copyfile(lab.server.log_file, kept)
            reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                reporter.write_line(f"restate-server's log of this session is kept: {kept}")


def _the_lab(restate_lab: Any) -> Lab:
    """``restate_lab``, checked: a project fixture of that name that is not a lab is named."""
    from .lab import Lab

    if not isinstance(restate_lab, Lab):
        pytest.fail(f"the fixture restate_lab is overridden (by a conftest.py?) with a "
                    f"{type(restate_lab).__name__}, not a restate_tutorial.lab.Lab: rename your "
                    "fixture, or return a Lab from it", pytrace=False)
    return restate_lab


@pytest.fixture
def restate_key(request: pytest.FixtureRequest) -> str:
    """A key no other test uses: per-test isolation of virtual object / workflow state."""
    return f"{request.node.name[:40]}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def restate_ingress(restate_lab: TestLab) -> IngressClient:
    """Calls through Restate's HTTP ingress: ``call``, ``send``, ``attach``, ``get``."""
    return _the_lab(restate_lab).ingress


@pytest.fixture
def restate_admin(restate_lab: TestLab) -> AdminClient:
    """Restate's admin API: ``sql(...)``, deployments, subscriptions, ``wait_for_entry``."""
    return _the_lab(restate_lab).admin


@pytest.fixture
def restate_client(restate_lab: TestLab) -> Iterator[SdkClient]:
    """The SDK's typed client, bound to the lab's ingress: ``restate_client.service_call(greet,
    {"name": "Ada"})`` calls the handler ``greet`` by reference (its serde applies)."""
    from .testing_lab import SdkClient

    client = SdkClient(_the_lab(restate_lab))
    yield client
    client.close()


@pytest.fixture
def restate_wait(restate_lab: TestLab) -> Waiter:
    """``restate_wait.until_ended(invocation_id)``, ``restate_wait.until(lambda: …)``."""
    from .testing_lab import Waiter

    return Waiter(_the_lab(restate_lab))


@pytest.fixture
def restate_views() -> ModuleType:
    """The journal / state / invocations views (``views.journal(restate_admin, id)``…)."""
    from . import views

    return views


@pytest.fixture
def restate_crash_test(restate_lab: TestLab) -> Callable[..., CrashReport]:
    """``restate_crash_test(start, check, modes=..., timeout=60)``: ``start(run)`` starts one run
    of your scenario and returns its invocation id; ``check(run, invocation_id)`` asserts your
    invariant once it has ended. Fails naming each journal entry where a crash broke it."""
    from .crashes import MODES, crash_test

    lab = _the_lab(restate_lab)

    def run(start: Callable[[str], str], check: Callable[[str, str], None],
            modes: tuple[str, ...] = tuple(MODES), timeout: float = 60.0) -> CrashReport:
        __tracebackhide__ = True
        if restate_lab.no_retries:
            pytest.fail("restate_crash_test needs Restate's retries (a crash is a failed attempt"
                        " that Restate replays; under --restate-no-retries it kills the "
                        "invocation instead): run crash tests without that option",
                        pytrace=False)
        report = crash_test(lab, start, check, modes, timeout)
        report.assert_safe()
        return report

    return run
