"""restate-server versions: a node runs a chosen version (installed from npm on first use,
kept beside the pinned one) and restarts on another — an upgrade, a rollback — on its data."""

from __future__ import annotations

import pytest

from restate_tutorial.lab import Lab, LabError
from restate_tutorial.lab.binaries import RESTATE_VERSION, restate_server_binary
from restate_tutorial.patterns import basics

PREVIOUS = "1.6.2"  # the previous minor's latest patch on npm


def test_a_node_upgraded_and_rolled_back_keeps_its_sleeps_and_its_state() -> None:
    with Lab([basics.greeter, basics.visits], restate_version=PREVIOUS) as lab:
        assert lab.admin.version() == PREVIOUS
        assert lab.ingress.call("Visits", "visit", key="ada") == 1
        sleeping = lab.ingress.send("Greeter", "greet", {"name": "Ada", "delay_seconds": 2})
        lab.admin.wait_for_entry(sleeping, "Command: Sleep")
        lab.server.restart(version=RESTATE_VERSION)  # the upgrade, the sleep in flight
        assert lab.admin.version() == RESTATE_VERSION
        assert lab.ingress.attach(sleeping, timeout=30)["message"] == "Hello Ada!"
        assert lab.ingress.call("Visits", "visit", key="ada") == 2
        sleeping = lab.ingress.send("Greeter", "greet", {"name": "Bob", "delay_seconds": 2})
        lab.admin.wait_for_entry(sleeping, "Command: Sleep")
        lab.server.restart(version=PREVIOUS)  # the rollback, no 1.7 feature used
        assert lab.admin.version() == PREVIOUS
        assert lab.ingress.attach(sleeping, timeout=30)["message"] == "Hello Bob!"
        assert lab.ingress.call("Visits", "visit", key="ada") == 3


def test_a_version_npm_does_not_have_is_one_sentence() -> None:
    with pytest.raises(LabError, match=r"restate-server 0\.0\.1 could not be installed from npm"):
        restate_server_binary("0.0.1")
