"""The scripted model speaks OpenAI's chat-completions API well enough for the real `openai`
client, answers from its script, bills each answered call, and refuses what is not a request."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import openai
import pytest

from restate_tutorial.lab import ServiceHost
from restate_tutorial.simulated import model

SEARCH_TOOL = {"type": "function", "function": {
    "name": "search_fares", "parameters": {"type": "object", "properties": {}}}}


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    host = ServiceHost(model.app).start()
    yield f"{host.url}/v1"
    host.stop()


@pytest.fixture(autouse=True)
def fresh_model(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(model, "LATENCY", 0)
    model.reset()
    yield
    model.reset()


def ask(base_url: str, *messages: dict[str, object], tools: list[object] | None = None) -> object:
    client = openai.OpenAI(base_url=base_url, api_key="any", max_retries=0)
    return client.chat.completions.create(model="gpt-4o-mini", messages=messages,  # type: ignore
                                          tools=tools or openai.NOT_GIVEN)


def test_a_route_is_a_tool_call_and_each_answer_is_billed_once(base_url: str) -> None:
    answer = ask(base_url, {"role": "user", "content": "AMS to LIS please"}, tools=[SEARCH_TOOL])
    [call] = answer.choices[0].message.tool_calls  # type: ignore[attr-defined]
    assert call.function.name == "search_fares"
    assert json.loads(call.function.arguments) == {"route": "AMS-LIS"}
    assert answer.usage.total_tokens > 0  # type: ignore[attr-defined]
    assert model.ledger.history() == ["call"]
    ask(base_url, {"role": "user", "content": "AMS to LIS please"}, tools=[SEARCH_TOOL])
    assert model.ledger.history() == ["call", "call (repeated)"]  # the same prompt again
    assert model.bill()["repeated"] == 1


def test_only_offered_tools_are_called(base_url: str) -> None:
    answer = ask(base_url, {"role": "user", "content": "AMS to LIS please"})
    assert answer.choices[0].message.tool_calls is None  # type: ignore[attr-defined]
    assert "I can search fares" in answer.choices[0].message.content  # type: ignore


def test_scripted_503s_are_not_billed(base_url: str) -> None:
    model.fail_next(1, after=1)
    ask(base_url, {"role": "user", "content": "hello"})
    with pytest.raises(openai.InternalServerError):
        ask(base_url, {"role": "user", "content": "hello again"})
    assert model.ledger.history() == ["call", "503"]


@pytest.mark.parametrize(("body", "status"), [
    (b"not json", 400), (b"[]", 400), (b'{"messages": "hi"}', 400),
    (b'{"messages": [{"role": "user", "content": "\\ud800"}]}', 200),
    (b'{"messages": [{"role": "user", "content": "' + b"x" * 200_000 + b'"}]}', 200),
])
def test_what_is_not_a_request_is_refused_and_odd_text_is_answered(
        base_url: str, body: bytes, status: int) -> None:
    answer = httpx.post(f"{base_url}/chat/completions", content=body, timeout=30)
    assert answer.status_code == status, answer.text
    assert model.bill()["calls"] == (status == 200)


def test_another_path_is_404(base_url: str) -> None:
    assert httpx.get(f"{base_url}/models").status_code == 404
