"""One real lab (restate-server + embedded Kafka + service host) shared by the test session."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Short durable sleeps between moderation checks (before the services are imported).
os.environ.setdefault("RESTATE_TUTORIAL_POLL_SECONDS", "0.3")

from restate_tutorial.lab import Lab  # noqa: E402
from restate_tutorial.scenarios import SERVICES  # noqa: E402
from restate_tutorial.simulated import (  # noqa: E402
    bank,
    fares,
    mailer,
    model,
    quotes,
    social,
    travel,
)

from .services import inbox, relay  # noqa: E402


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    with Lab([*SERVICES, inbox, relay]) as running:
        bank.connect(running.server.ingress_url)  # where the simulated bank answers
        yield running


@pytest.fixture
def temp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temp dir of this test's own (``tempfile.gettempdir()`` and ``$TMPDIR`` point at it):
    what is left in it is this test's doing, whatever the other test workers run meanwhile."""
    own = tmp_path / "temp"
    own.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(own))
    monkeypatch.setenv("TMPDIR", str(own))
    return own


@pytest.fixture
def fresh_ledgers() -> Iterator[None]:
    """Empty ledgers and no scripted failures in the simulated systems, before and after."""
    for simulated in (travel, social, bank, fares, mailer, quotes, model):
        simulated.reset()
    yield
    for simulated in (travel, social, bank, fares, mailer, quotes, model):
        simulated.reset()


# The runs that take longest start first, so that `make test`'s workers (pytest-xdist) finish
# together instead of waiting on one late, long test.
SLOWEST_FIRST = ("test_make_lab.py", "test_notebooks_twice.py", "test_soak.py",
                 "test_external_mode.py", "test_benchmarks.py", "test_cluster.py")


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Each test to any worker, except that the tests of a module with a module-scoped fixture
    (a cluster, a JupyterLab) stay on one worker, so that it starts once. (What
    ``--dist loadgroup`` promises, done here: its marks are not applied under pytest 9.)"""
    from xdist.scheduler import LoadScopeScheduling

    root = Path(str(config.rootpath))
    shared = {str(path.relative_to(root)) for path in (root / "tests").rglob("test_*.py")
              if 'scope="module"' in path.read_text()}

    class Scheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return module if module in shared else nodeid

    return Scheduling(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slowest first."""
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return next((i for i, slow in enumerate(SLOWEST_FIRST) if name.endswith(slow)),
                    len(SLOWEST_FIRST))

    items.sort(key=rank)


# The browser tests' JupyterLab: one for the whole run, started by the controller of the test
# workers (tests/system/browser.py), when the run includes those tests.
BROWSER_TESTS = Path(__file__).parent / "system" / "test_make_lab.py"
JUPYTERLAB = pytest.StashKey[tuple[Any, list[Any], Path]]()  # stack, processes, its dir


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput") or not config.getoption("numprocesses", None):
        return  # a test worker, or a run without workers: the tests start their own
    here = config.invocation_params.dir
    selected = [(here / arg.split("::")[0]).resolve() for arg in config.args]
    if any(path == BROWSER_TESTS or path in BROWSER_TESTS.parents for path in selected):
        from .system.browser import JupyterLabServer

        config.stash[JUPYTERLAB] = JupyterLabServer.start()


def pytest_configure_node(node: Any) -> None:
    """pytest-xdist: tell each test worker where the run's JupyterLab is."""
    if JUPYTERLAB in node.config.stash:
        stack, _, _ = node.config.stash[JUPYTERLAB]
        node.workerinput["jupyterlab_server"] = vars(stack)


def pytest_unconfigure(config: pytest.Config) -> None:
    if JUPYTERLAB in config.stash:
        from .system.browser import stop

        _, processes, home = config.stash[JUPYTERLAB]
        del config.stash[JUPYTERLAB]
        stop(processes, home)

