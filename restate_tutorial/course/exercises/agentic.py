"""Checks for the exercises of notebook 10 (a durable agent)."""

from __future__ import annotations

import uuid

from ...lab import Lab
from ...scenarios import serve_scripted_model
from ...simulated import mailer, model
from .checking import answer, check, expect

#: 10.2: the most tokens one conversation may spend on the model.
CAP_TOKENS = 600
#: 10.2: how many messages the check sends to one conversation.
MESSAGES = 6


@check("Exercise 10.1 · a tool of your own")
def check_email_tool(lab: Lab) -> None:
    serve_scripted_model()
    key, address = f"check-{uuid.uuid4().hex[:6]}", f"ada-{uuid.uuid4().hex[:6]}@example.com"
    answer(lab, "ItineraryAgent", "Message", {"text": "flights from AMS to LIS"}, key=key)
    # The mailer's answer gets lost once, and the model's next answer fails once: each time
    # Restate retries the turn.
    mailer.failures.lose_answer_next("notify")
    model.fail_next(1, after=1)
    try:
        reply = answer(lab, "ItineraryAgent", "Message",
                       {"text": f"please email the itinerary to {address}"}, key=key)
    finally:
        model.clear_script()
        mailer.failures.clear()
    sent = mailer.ledger.entries("notify", to=address)
    expect(bool(sent), f"an email to {address}",
           f"none was sent; the agent replied {reply.get('reply')!r}",
           "write the tool's body (mailer.notify) and offer the tool to the agent: "
           "tools=[agent.search_fares, email_itinerary]")
    expect(len(sent) == 1,
           "one email, although the turn was retried twice after your tool had sent it (the "
           "mailer's answer was lost, the model failed once): a retry replays the journal, "
           "and runs again every step that did not journal what it did",
           f"{len(sent)} emails to {address}: {[e['message_id'][:8] for e in sent]}",
           "send it in a journaled step, with a key made once: message_id = await "
           "unique_key(ctx, \"message id\"); await ctx.run_typed(\"email itinerary\", "
           "mailer.notify, to=address, …, message_id=message_id)")


@check("Exercise 10.2 · a spend cap per conversation")
def check_spend_cap(lab: Lab) -> None:
    serve_scripted_model()
    key = f"check-{uuid.uuid4().hex[:6]}"
    billed: list[int] = []  # the tokens each message cost
    for _ in range(MESSAGES):
        before = model.bill()["tokens"]
        answer(lab, "FrugalAgent", "Message", {"text": "hello"}, key=key)
        billed.append(int(model.bill()["tokens"] - before))
    spent_before = [sum(billed[:n]) for n in range(MESSAGES)]
    asked = [spent < CAP_TOKENS for spent in spent_before]
    expect(all(bool(cost) == ask for cost, ask in zip(billed, asked, strict=True)),
           f"the model asked while the conversation had spent under {CAP_TOKENS} tokens, "
           "never after",
           f"tokens billed for each of {MESSAGES} messages: {billed}",
           "before calling the model, read the conversation's total from its state "
           "(ctx.get(\"tokens\")) and answer without the model once it is at the cap; after "
           "the turn, add answer[\"tokens\"] to it (ctx.set)")
    other = f"check-{uuid.uuid4().hex[:6]}"
    before = model.bill()["tokens"]
    answer(lab, "FrugalAgent", "Message", {"text": "hello"}, key=other)
    expect(model.bill()["tokens"] > before, "another conversation still answered by the model",
           "a new conversation's first message was not sent to the model",
           "keep the total per conversation, in the virtual object's state — not in a "
           "variable that all conversations share")
