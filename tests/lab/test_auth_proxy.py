"""The auth proxy in front of the ingress: no token, no call; the token never reaches Restate's
journal, which keeps every other ingress header."""

from __future__ import annotations

import json
import socket

import httpx
import pytest

from restate_tutorial.lab import Lab, LabError
from restate_tutorial.lab.auth_proxy import AuthProxy
from restate_tutorial.lab.processes import free_port

TOKEN = "s3cret-token-of-the-tests"  # fixed: test ids must be the same on every worker


def input_headers(lab: Lab, invocation: str) -> dict[str, str]:
    """The headers Restate journaled with the invocation's input."""
    [entry] = lab.admin.sql(f"SELECT entry_json FROM sys_journal WHERE id = '{invocation}' "
                            "AND entry_type = 'Command: Input'")
    headers = json.loads(entry["entry_json"])["Command"]["Input"]["headers"]
    return {h["name"]: h["value"] for h in headers}


def greet(url: str, **headers: str) -> httpx.Response:
    return httpx.post(f"{url}/Greeter/greet", json={"name": "proxy", "delay_seconds": 0},
                      headers=headers, timeout=30)


def test_a_token_sent_to_the_ingress_is_kept_in_the_journal(lab: Lab) -> None:
    answer = greet(lab.server.ingress_url, authorization=f"Bearer {TOKEN}")
    assert answer.status_code == 200
    assert input_headers(lab, answer.headers["x-restate-id"])["authorization"] == \
        f"Bearer {TOKEN}"


def test_through_the_proxy_the_token_is_checked_and_stripped(lab: Lab) -> None:
    with AuthProxy(lab.server.ingress_url, {TOKEN: "ada"}) as proxy:
        answer = greet(proxy.url, authorization=f"Bearer {TOKEN}", **{"x-trace": "t1"})
        assert answer.status_code == 200 and answer.json()["message"] == "Hello proxy!"
        headers = input_headers(lab, answer.headers["x-restate-id"])
        assert "authorization" not in headers and TOKEN not in str(headers)
        assert headers["x-caller"] == "ada" and headers["x-trace"] == "t1"


@pytest.mark.parametrize("authorization", [
    None, "", f"Basic {TOKEN}", "Bearer", "Bearer wrong", f"Bearer {TOKEN}x",
    f"Bearer {TOKEN[:-1]}", f"Bearer  {TOKEN}", "Bearer " + "x" * 10_000,
], ids=["none", "empty", "basic", "no token", "wrong", "a byte more", "a byte less",
        "two spaces", "10 KB"])
def test_without_its_token_the_proxy_answers_401_and_nothing_runs(
        lab: Lab, authorization: str | None) -> None:
    before = lab.admin.sql("SELECT count(*) AS n FROM sys_invocation WHERE "
                           "target_service_name = 'Greeter'")[0]["n"]
    with AuthProxy(lab.server.ingress_url, {TOKEN: "ada"}) as proxy:
        headers = {} if authorization is None else {"authorization": authorization}
        answer = greet(proxy.url, **headers)
    assert answer.status_code == 401 and "bearer token" in answer.json()["message"]
    assert lab.admin.sql("SELECT count(*) AS n FROM sys_invocation WHERE "
                         "target_service_name = 'Greeter'")[0]["n"] == before


def test_a_client_may_spell_bearer_in_any_case(lab: Lab) -> None:
    with AuthProxy(lab.server.ingress_url, {TOKEN: "ada"}) as proxy:
        assert greet(proxy.url, authorization=f"bearer {TOKEN}").status_code == 200


def test_errors_of_restate_pass_through_and_a_missing_ingress_is_502(lab: Lab) -> None:
    with AuthProxy(lab.server.ingress_url, {TOKEN: "ada"}) as proxy:
        missing = httpx.post(f"{proxy.url}/NoSuchService/x", json={}, timeout=30,
                             headers={"authorization": f"Bearer {TOKEN}"})
        assert missing.status_code == 404
    with AuthProxy(f"http://127.0.0.1:{free_port()}", {TOKEN: "ada"}) as nowhere:
        answer = greet(nowhere.url, authorization=f"Bearer {TOKEN}")
    assert answer.status_code == 502 and "not reachable" in answer.json()["message"]


def test_a_port_in_use_is_one_sentence() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(LabError, match=f"{port}.*already in use"):
            AuthProxy("http://127.0.0.1:1", {TOKEN: "ada"}, port=port).start()
