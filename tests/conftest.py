"""One real lab (restate-server + embedded Kafka + service host) shared by the test session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from restate_tutorial.__main__ import SERVICES
from restate_tutorial.lab import Lab

from .services import inbox


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    with Lab([*SERVICES, inbox]) as running:
        yield running
