"""One real lab (restate-server + embedded Kafka + service host) shared by the test session."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# Short durable sleeps between moderation checks (before the services are imported).
os.environ.setdefault("RESTATE_TUTORIAL_POLL_SECONDS", "0.3")

from restate_tutorial.lab import Lab  # noqa: E402
from restate_tutorial.scenarios import SERVICES  # noqa: E402
from restate_tutorial.simulated import social, travel  # noqa: E402

from .services import inbox  # noqa: E402


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    with Lab([*SERVICES, inbox]) as running:
        yield running


@pytest.fixture
def fresh_ledgers() -> Iterator[None]:
    """Empty ledgers and no scripted failures in the simulated systems, before and after."""
    travel.reset()
    social.reset()
    yield
    travel.reset()
    social.reset()
