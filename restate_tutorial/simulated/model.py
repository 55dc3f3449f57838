"""A simulated language model behind OpenAI's chat-completions API — NOT part of Restate.

``app`` is an ASGI app answering ``POST /v1/chat/completions`` in OpenAI's wire format, so the
real ``openai`` / ``openai-agents`` packages talk to it (base URL pointed at it, any key). It
"thinks" by a fixed script, so every conversation is repeatable:

- a user message naming a route (``AMS to LIS``, ``AMS-LIS``) → call ``search_fares``;
- ``book it for Ada Lovelace`` (optionally ``book KL …``) after a search → call ``book_flight``
  with the best (or the named) fare of the last search — in the same message as the route
  too: search, then book;
- ``email … ada@example.com`` → call ``email_itinerary`` (notebook 10's exercise);
- a tool's answer → a sentence about it; anything else → what it can do.

It calls only the tools the request offers. Every answered call is billed (``ledger``: tokens
and cents); a call whose whole prompt was answered before is billed as ``call (repeated)`` —
a step run again. ``fail_next(2)`` answers the next two calls with 503 (``after=1``: once one
more call is answered); ``answer_badly_next()`` makes the next tool call unusable (arguments
that are not JSON); ``call_unknown_tool_next()`` calls a tool no agent has.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import threading
from typing import Any

from .ledger import Ledger

ledger = Ledger("model")
#: Cents per 1,000 tokens, prompt and answer alike (a made-up price).
CENTS_PER_1K_TOKENS = 0.5
#: Seconds to "think" per call (``make test`` sets a shorter time).
LATENCY = float(os.environ.get("RESTATE_TUTORIAL_MODEL_SECONDS", "0.2"))
ROUTE = re.compile(r"\b([A-Z]{3})\s*(?:-|to|→)\s*([A-Z]{3})\b")
PASSENGER = re.compile(r"\bfor ([A-Z][\w'.-]*(?: [A-Z][\w'.-]*)*)")
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
TOOL_ERROR = "An error occurred while calling the tool"

_lock = threading.Lock()
_answered: set[str] = set()
_script: dict[str, int] = {"503": 0, "answer first": 0, "bad arguments": 0,
                          "unknown tool": 0}
_prices: list[int] = []  # the tokens the next answers cost, when scripted


def fail_next(times: int = 1, *, after: int = 0) -> None:
    """``times`` calls answer 503 (overloaded, not billed), once ``after`` more have been
    answered: ``fail_next(1, after=1)`` fails the second call from now."""
    with _lock:
        _script["answer first"] = after
        _script["503"] += times


def answer_badly_next(times: int = 1) -> None:
    """The next ``times`` tool calls carry arguments that are not JSON."""
    _add("bad arguments", times)


def call_unknown_tool_next(times: int = 1) -> None:
    """The next ``times`` answers call ``teleport``, a tool no agent offers."""
    _add("unknown tool", times)


def price_next(*tokens: int) -> None:
    """The next answers cost these many tokens each (prompt and answer together), in order."""
    with _lock:
        _prices.extend(tokens)


def _add(what: str, times: int) -> None:
    with _lock:
        _script[what] += times


def _take(what: str) -> bool:
    with _lock:
        if _script[what] <= 0:
            return False
        _script[what] -= 1
        return True


def bill() -> dict[str, float]:
    """Calls billed (repeats included), tokens and cents, since the last reset."""
    calls = ledger.entries("call") + ledger.entries("call (repeated)")
    tokens = sum(e["tokens"] for e in calls)
    return {"calls": len(calls), "repeated": ledger.count("call (repeated)"),
            "tokens": tokens, "cents": round(tokens * CENTS_PER_1K_TOKENS / 1000, 4)}


def clear_script() -> None:
    """No scripted failure is pending any more."""
    with _lock:
        for what in _script:
            _script[what] = 0
        _prices.clear()


def reset() -> None:
    clear_script()
    with _lock:
        ledger.clear()
        _answered.clear()


# -- The script: what the model answers ------------------------------------------------------

def respond(messages: list[dict[str, Any]], tools: list[str]) -> dict[str, Any]:
    """The next assistant message: ``{"content": …}`` or ``{"tool": name, "arguments": {…}}``."""
    last = messages[-1] if messages else {"role": "user", "content": ""}
    if last.get("role") == "tool":
        return _after_tool(messages, last, tools)
    return _after_user(messages, _text(last.get("content")), tools)


def _after_user(messages: list[dict[str, Any]], text: str, tools: list[str]) -> dict[str, Any]:
    if (route := ROUTE.search(text)) and "search_fares" in tools:
        return {"tool": "search_fares", "arguments": {"route": "-".join(route.groups())}}
    if "email" in text.lower() and (address := EMAIL.search(text)):
        if "email_itinerary" not in tools:
            return {"content": "Sorry, I cannot send email."}
        return {"tool": "email_itinerary", "arguments": {"address": address.group()}}
    if "book" in text.lower() and "book_flight" in tools:
        if not _last_result(messages, "search_fares"):
            return {"content": "Which route? Say for example 'flights from AMS to LIS'."}
        return _booking(messages, text) or {
            "content": "Who is travelling? Say 'book it for <full name>'."}
    return {"content": "I can search fares ('flights from AMS to LIS') and book the best one "
                       "('book it for Ada Lovelace')."}


def _booking(messages: list[dict[str, Any]], text: str) -> dict[str, Any] | None:
    """The book_flight call ``text`` asks for ("book [KL] for <name>"), from the last search."""
    search = _last_result(messages, "search_fares")
    passenger = PASSENGER.search(text)
    if "book" not in text.lower() or not passenger or not search or not search.get("fares"):
        return None
    named = [f for f in search["fares"] if re.search(rf"\b{f['airline']}\b", text)]
    fare = named[0] if named else search["best"]
    return {"tool": "book_flight", "arguments": {
        "route": search["route"], "airline": fare["airline"],
        "passenger_name": passenger.group(1)}}


def _after_tool(messages: list[dict[str, Any]], last: dict[str, Any],
                tools: list[str]) -> dict[str, Any]:
    text = _text(last.get("content"))
    user = _text(next((m for m in reversed(messages) if m.get("role") == "user"),
                      {}).get("content"))
    if text.startswith(TOOL_ERROR):  # our own bad call: ask again, properly this time
        return _after_user(messages, user, tools)
    name = _tool_name(messages, last.get("tool_call_id"))
    result = _json(text)
    if name == "search_fares" and "book_flight" in tools and (booking := _booking(messages, user)):
        return booking  # "… AMS to LIS, book it for Ada": searched, now book
    if name == "search_fares" and isinstance(result, dict) and result.get("best"):
        best, answered = result["best"], len(result.get("fares", []))
        return {"content": f"The best fare for {result['route']} is €{best['fare']:g} with "
                           f"{best['airline']} ({answered} airlines answered). Shall I book "
                           "it? Say 'book it for <full name>'."}
    if name == "book_flight" and isinstance(result, dict) and "flight_booking_id" in result:
        return {"content": f"Booked {result['airline']} {result['route']} for "
                           f"{result['passenger_name']}: €{result['fare']:g}, booking "
                           f"{result['flight_booking_id']}."}
    return {"content": f"{name}: {text}"}


def _last_result(messages: list[dict[str, Any]], tool: str) -> Any:
    for message in reversed(messages):
        if message.get("role") == "tool" and _tool_name(messages,
                                                        message.get("tool_call_id")) == tool:
            result = _json(_text(message.get("content")))
            if isinstance(result, dict):
                return result
    return None


def _tool_name(messages: list[dict[str, Any]], call_id: Any) -> str | None:
    for message in messages:
        for call in message.get("tool_calls") or []:
            if call.get("id") == call_id:
                return call["function"]["name"]
    return None


def _text(content: Any) -> str:
    if isinstance(content, list):  # content parts
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


# -- The API: OpenAI's chat-completions wire format ------------------------------------------

def complete(request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Answer one chat-completions request body: (HTTP status, response body)."""
    if not _take("answer first") and _take("503"):
        ledger.record("503")
        return 503, {"error": {"message": "The model is overloaded, try again (scripted)",
                               "type": "server_error"}}
    messages = request.get("messages")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        return 400, {"error": {"message": "'messages' must be a list of objects",
                               "type": "invalid_request_error"}}
    tools = [t.get("function", {}).get("name") for t in request.get("tools") or []
             if isinstance(t, dict)]
    prompt = json.dumps(messages, sort_keys=True, ensure_ascii=False)
    digest = hashlib.sha256(prompt.encode("utf-8", "replace")).hexdigest()[:16]
    answer = respond(messages, tools)
    message: dict[str, Any] = {"role": "assistant", "content": answer.get("content")}
    if "tool" in answer:
        name, arguments = answer["tool"], json.dumps(answer["arguments"], ensure_ascii=False)
        if _take("unknown tool"):
            name = "teleport"
        elif _take("bad arguments"):
            arguments = arguments[:-1]  # cut short: not JSON any more
        message["tool_calls"] = [{"id": f"call_{digest}", "type": "function",
                                  "function": {"name": name, "arguments": arguments}}]
    prompt_tokens = max(1, len(prompt) // 4)
    answer_tokens = max(1, len(json.dumps(message)) // 4)
    with _lock:
        repeated = digest in _answered
        _answered.add(digest)
        if _prices:
            prompt_tokens, answer_tokens = _prices.pop(0) - 1, 1
    ledger.record("call (repeated)" if repeated else "call", prompt=digest,
                  tokens=prompt_tokens + answer_tokens,
                  tool=message.get("tool_calls", [{}])[0].get("function", {}).get("name"))
    return 200, {
        "id": f"chatcmpl-{digest}", "object": "chat.completion", "created": 0,
        "model": str(request.get("model") or "scripted"),
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": "tool_calls" if "tool_calls" in message else "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": answer_tokens,
                  "total_tokens": prompt_tokens + answer_tokens}}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The ASGI app: ``POST /v1/chat/completions``; anything else is 404."""
    if scope["type"] != "http":
        return
    body = b""
    while True:
        event = await receive()
        body += event.get("body", b"")
        if not event.get("more_body"):
            break
    if scope["method"] == "POST" and scope["path"].rstrip("/").endswith("/chat/completions"):
        try:
            request = json.loads(body)
        except ValueError:
            request = None
        if isinstance(request, dict):
            await asyncio.sleep(LATENCY)
            status, answer = complete(request)
        else:
            status, answer = 400, {"error": {"message": "the body must be a JSON object",
                                             "type": "invalid_request_error"}}
    else:
        status, answer = 404, {"error": {"message": f"no such endpoint: {scope['path']}"}}
    data = json.dumps(answer).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})
