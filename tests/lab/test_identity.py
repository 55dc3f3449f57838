"""Signed requests: the service host runs only what the lab's own restate-server sends."""

from __future__ import annotations

import httpx
import pytest
import restate
from restate.server import PyIdentityVerifier

from restate_tutorial.lab import AdminClient, Lab, LabError
from restate_tutorial.lab.identity import (
    RequestIdentity,
    base58,
    send_unsigned,
    server_with_another_key,
)
from restate_tutorial.patterns import basics
from restate_tutorial.simulated import mailer

#: What a client that is not Restate sends: the SDK's own paths, a protocol content type.
DIRECT = [("GET", "/discover"), ("POST", "/invoke/Greeter/greet"),
          ("POST", "/invoke/Flights/Cancel")]


@pytest.mark.lab_restate
def test_a_request_straight_to_the_service_host_gets_401_and_runs_nothing(lab: Lab) -> None:
    drafted = mailer.ledger.count("draft")
    for method, path in DIRECT:
        response = httpx.request(method, f"{lab.host.url}{path}", content=b"\0\0\0\0",
                                 headers={"content-type": "application/vnd.restate.invocation.v5",
                                          "accept": "application/vnd.restate.endpointmanifest"
                                                    ".v3+json"}, timeout=10)
        assert response.status_code == 401, (path, response.status_code, response.text)
    assert mailer.ledger.count("draft") == drafted
    # The same handler through Restate: signed, so it runs.
    answer = lab.ingress.call("Greeter", "greet", {"name": "Signed", "delay_seconds": 0})
    assert answer["message"] == "Hello Signed!" and mailer.ledger.count("draft") == drafted + 1


@pytest.mark.lab_restate
def test_a_restate_with_another_key_cannot_register_the_services() -> None:
    lab = Lab([basics.greeter])
    lab.host.app = restate.app([basics.greeter],
                               identity_keys=[RequestIdentity.new().public_key])
    with pytest.raises(LabError, match="401|Unauthorized|unauthorized"):
        lab.start()
    assert not lab.running


def test_a_lab_key_is_in_the_sdks_format() -> None:
    identity = RequestIdentity.new()
    assert identity.public_key.startswith("publickeyv1_")
    PyIdentityVerifier([identity.public_key])  # raises on a key it cannot read
    assert b"BEGIN PRIVATE KEY" in identity.private_key_pem
    assert base58(b"\0\0\x01") == "112" and base58(bytes([0xFF])) == "5Q"


@pytest.mark.lab_restate
def test_the_notebooks_helpers_show_both_refusals(lab: Lab) -> None:
    """Notebook 13's two refusals: an unsigned request, and a Restate with another key."""
    assert send_unsigned(lab.host.url, "Greeter", "greet").status_code == 401
    stranger = server_with_another_key().start()
    try:
        with pytest.raises(LabError, match="401 Unauthorized"):
            AdminClient(stranger.admin_url).register_deployment(lab.host.url)
        assert AdminClient(stranger.admin_url).deployments() == []
    finally:
        stranger.stop()
