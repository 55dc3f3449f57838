"""Clients of a cluster: a node that accepts connections but never answers (a frozen process)
is skipped for requests that are safe to repeat, and only for those."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest

from restate_tutorial.lab import Lab, failover
from restate_tutorial.lab.failover import FailoverHttp


@pytest.fixture
def frozen_node() -> Iterator[str]:
    """A listening socket nobody reads from: the kernel accepts, nothing answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


@pytest.fixture(autouse=True)
def short_attempts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(failover, "SAFE_ATTEMPT_SECONDS", 0.5)
    monkeypatch.setattr(failover, "PROBE_SECONDS", 0.5)


def test_a_safe_request_moves_on_from_a_silent_node(lab: Lab, frozen_node: str) -> None:
    http = FailoverHttp([frozen_node, lab.server.admin_url], timeout=10)
    assert http.request("GET", "/health").is_success
    assert http.url == lab.server.admin_url
    query = http.request("POST", "/query", json={"query": "SELECT 1 AS one"},
                         headers={"accept": "application/json"})
    assert query.json()["rows"] == [{"one": 1}]


def test_a_request_that_may_have_had_an_effect_is_not_sent_twice(lab: Lab,
                                                                 frozen_node: str) -> None:
    http = FailoverHttp([frozen_node, lab.server.ingress_url], timeout=1.5)
    with pytest.raises(httpx.TimeoutException):
        http.request("POST", "/Greeter/greet", json={"name": "once", "delay_seconds": 0})
    assert http.url == frozen_node  # it stayed: the greeting may have been sent there
    keyed = http.request("POST", "/Greeter/greet", json={"name": "keyed", "delay_seconds": 0},
                         headers={"idempotency-key": "failover-test-keyed"})
    assert keyed.json()["message"] == "Hello keyed!"


def test_a_request_that_must_not_repeat_goes_to_a_node_that_answers_its_health_check(
        lab: Lab, frozen_node: str) -> None:
    http = FailoverHttp([frozen_node, lab.server.ingress_url], timeout=10,
                        health_path="/restate/health")
    answer = http.request("POST", "/Greeter/greet", json={"name": "probed", "delay_seconds": 0})
    assert answer.json()["message"] == "Hello probed!"
    assert http.url == lab.server.ingress_url


def test_a_long_attach_waits_on_a_slow_node_while_another_is_down(lab: Lab) -> None:
    with socket.socket() as closed:  # a port nobody listens on: the connection is refused
        closed.bind(("127.0.0.1", 0))
        dead_node = f"http://127.0.0.1:{closed.getsockname()[1]}"
    invocation = lab.ingress.send("Greeter", "greet", {"name": "slow", "delay_seconds": 2})
    http = FailoverHttp([dead_node, lab.server.ingress_url], timeout=30)
    # Each try on the live node stays silent longer than SAFE_ATTEMPT_SECONDS: it is tried
    # again until the invocation ends, not given up after one round that ends on the dead node.
    answer = http.request("GET", f"/restate/invocation/{invocation}/attach")
    assert answer.json()["message"] == "Hello slow!"
