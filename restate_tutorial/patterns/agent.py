"""A durable AI agent: a travel assistant whose model calls and tool calls are journaled.

    TravelAgent/<conversation>/Message  {"text": "flights from AMS to LIS"}  → {"reply": …}
      loop (the OpenAI Agents SDK's Runner, made durable by restate.ext.openai.DurableRunner):
        ├─ run "call LLM"          the model's answer, journaled: a retry or a crash replays it,
        │                          never asks (and pays for) it again
        └─ a tool, if it asked for one — each one durable itself:
             search_fares  → FareSearch/Search          (notebook 09's fan-out)
             book_flight   → BookingWorkflow/Run        (notebook 01's saga), but over
                             APPROVAL_OVER euros → TripApproval/Run first (notebook 07: a
                             person decides; the agent waits, durably, for days if need be)
      the conversation's history: the object's state "items", written when the turn is over
      (a virtual object: one message of a conversation at a time)

The budget rule lives in the tool's code, not in the prompt, and the fare it applies to is the
airlines' (kept from the last search), not one the model names: no answer of a model can book
an expensive trip without a person's yes. A model answer that cannot be used (a tool that does not
exist) is a final answer too — retrying would replay the same journaled answer — so the user is
told and nothing is booked. The model is found the usual way (``OPENAI_BASE_URL``,
``OPENAI_API_KEY``): the lab points it at the scripted model of ``simulated/model.py``.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import restate
from agents import (
    Agent,
    ModelBehaviorError,
    RunContextWrapper,
    set_default_openai_api,
    set_default_openai_client,
    set_tracing_disabled,
)
from agents.exceptions import MaxTurnsExceeded
from openai import AsyncOpenAI
from restate import ObjectContext, RunOptions, TerminalError
from restate.ext.openai import DurableRunner, durable_function_tool, restate_object_context

from .approvals import run as approve_and_book
from .fan_out import search
from .keys import unique_key
from .payloads import JSON_INPUT, fields, text
from .sagas import run as book

# OpenAI-compatible servers (vLLM, Ollama, LiteLLM, the scripted model) speak chat completions;
# traces would be sent to OpenAI's platform, which a local model has no account on.
set_default_openai_api("chat_completions")
set_tracing_disabled(True)

MODEL = "gpt-4o-mini"
#: A trip above this many euros is booked only once a person approves it.
APPROVAL_OVER = 200
APPROVER = "travel-desk@example.com"
#: The card on file (a test card the payment API accepts); the model never sees it.
CARD_ON_FILE = "5555555555554444"
#: Room for a slow airline, and for a loaded machine: the agent needs every fare it can get.
SEARCH_DEADLINE_SECONDS = 10
#: A model call that fails (503, a timeout) is retried by Restate, this often at most.
MODEL_CALL = RunOptions(max_attempts=6, initial_retry_interval=timedelta(milliseconds=200))
MAX_TURNS = 6

travel_agent = restate.VirtualObject("TravelAgent")


@durable_function_tool
async def search_fares(route: str) -> str:
    """Search every airline's fare for a route written like "AMS-LIS"; the best comes first."""
    ctx = restate_object_context()
    try:
        # A durable call: after a crash Restate hands back its answer, it does not search again.
        found = await ctx.service_call(search, arg={"route": route,
                                                    "deadline_seconds": SEARCH_DEADLINE_SECONDS})
    except TerminalError as error:
        if error.status_code == 409:  # cancelled: stop the whole conversation turn
            raise
        found = {"error": error.message}
    else:
        ctx.set("fares", found)  # what book_flight charges: the airlines' fares, not the model's
    return json.dumps(found)  # what the model reads


@durable_function_tool
async def book_flight(route: str, airline: str, passenger_name: str) -> str:
    """Book a flight found by the last search (and a car at the destination), at its fare, paid
    with the card on file."""
    ctx = restate_object_context()
    found = await ctx.get("fares", type_hint=dict) or {}
    fare = next((f["fare"] for f in found.get("fares", [])
                 if found.get("route") == route and f["airline"] == airline), None)
    if fare is None:
        return json.dumps({"booked": False, "error": f"no fare of {airline} for {route} in this "
                                                     "conversation: search the route first"})
    trip = await unique_key(ctx, "trip id")  # a new trip id, journaled
    booking = {"flights": {"flight_id": f"{airline}-{route}", "passenger_name": passenger_name},
               "car": {"pickup_location": route[-3:], "rental_date": "on arrival"},
               "payment_info": {"card_number": CARD_ON_FILE, "amount": fare}}
    try:
        if fare > APPROVAL_OVER:  # the rule is code: a person approves, then it is booked
            result = await ctx.workflow_call(approve_and_book, key=trip,
                                             arg={**booking, "approver": APPROVER})
        else:
            result = await ctx.workflow_call(book, key=trip, arg=booking)
    except TerminalError as error:
        if error.status_code == 409:
            raise
        return json.dumps({"trip": trip, "booked": False, "error": error.message})
    return json.dumps({"trip": trip, "booked": True, "route": route, "airline": airline,
                       "fare": fare, "passenger_name": passenger_name,
                       "flight_booking_id": result["flight_reservation"],
                       "approved_by": result.get("approved_by")})


def instructions(run: RunContextWrapper[Any], agent: Agent[Any]) -> str:
    return ("You are a travel assistant. Search fares with search_fares and book with "
            f"book_flight; trips over €{APPROVAL_OVER} need a person's approval, which "
            f"book_flight asks for. Conversation: {restate_object_context().key()}.")


travel_assistant = Agent(name="TravelAgent", model=MODEL, instructions=instructions,
                         tools=[search_fares, book_flight])


#: The model client of each event loop that has run the agent, newest last.
_model_clients: list[tuple[asyncio.AbstractEventLoop, AsyncOpenAI]] = []


def use_a_model_client_of_this_loop() -> None:
    """The Agents SDK shares one HTTP client per process, bound to the event loop that used it
    first. A service host restarted in this process (the lab's crashes) runs a new loop: hand
    the SDK a client of its own. The old ones are kept: dropped, each would try to close its
    connections on its loop, which is closed. ``max_retries=0``: Restate alone retries a failed
    model call, with the journal to show for it."""
    loop = asyncio.get_running_loop()
    if not _model_clients or _model_clients[-1][0] is not loop:
        _model_clients.append((loop, AsyncOpenAI(max_retries=0, timeout=60)))
        set_default_openai_client(_model_clients[-1][1], use_for_tracing=False)


def parse_message(request: Any) -> str:
    """The text of a message; else TerminalError(400)."""
    return text(fields(request, "message", text=str)["text"], "message text")


async def converse(ctx: ObjectContext, request: Any, agent: Agent[Any]) -> dict[str, Any]:
    """One turn of the conversation ``ctx.key()`` with ``agent``: the reply and its cost."""
    message = parse_message(request)
    use_a_model_client_of_this_loop()
    history = await ctx.get("items", type_hint=list) or []
    try:
        # The agent loop: each model answer is journaled, and each tool journals its own steps.
        result = await DurableRunner.run(agent, [*history, {"role": "user", "content": message}],
                                         run_options=MODEL_CALL, max_turns=MAX_TURNS)
    except (ModelBehaviorError, MaxTurnsExceeded) as error:
        # The model's journaled answer is unusable: retrying would replay it. Say so, stop.
        return {"reply": "Sorry, that went wrong on my side and nothing was done: "
                         f"{error}. Please say it again.", "conversation": ctx.key(),
                "error": type(error).__name__}
    # The history is written once the turn is over. (Not DurableRunner's session, which also
    # writes it when a tool raises: the retry then takes another path — a journal mismatch.)
    ctx.set("items", result.to_input_list())
    usage = result.context_wrapper.usage
    return {"reply": str(result.final_output), "conversation": ctx.key(),
            "model_calls": len(result.raw_responses), "tokens": usage.total_tokens}


@travel_agent.handler(name="Message", input_serde=JSON_INPUT)
async def on_message(ctx: ObjectContext, request: Any) -> dict[str, Any]:
    return await converse(ctx, request, travel_assistant)


@travel_agent.handler(name="History", kind="shared")
async def history(ctx: restate.ObjectSharedContext) -> list[dict[str, Any]]:
    """The conversation so far, as the agent's session keeps it."""
    return await ctx.get("items", type_hint=list) or []


services = [travel_agent]
