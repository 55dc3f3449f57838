"""Checks for the exercises of notebook 10 (a durable agent)."""

from __future__ import annotations

import uuid

from ...lab import Lab
from ...scenarios import serve_scripted_model
from ...simulated import mailer, model
from .checking import SERVER, answer, check, crash, expect, stored_state

#: 10.2: the most tokens one conversation may spend on the model.
CAP_TOKENS = 600
#: 10.2: what the model charges for the check's messages, in tokens: the third reaches the
#: cap exactly (the model is not asked again), and no count of messages tells it.
PRICES = (250, 100, 250, 40, 40, 40)


@check("Exercise 10.1 · a tool of your own")
def check_email_tool(lab: Lab) -> None:
    serve_scripted_model()
    address = f"ada-{uuid.uuid4().hex[:6]}@example.com"
    key = f"check-{uuid.uuid4().hex[:6]}"
    answer(lab, "ItineraryAgent", "Message", {"text": "flights from AMS to LIS"}, key=key)
    crash(lab, SERVER, "between two messages of the conversation")
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
    asked = mailer.ledger.entries(to=address)
    expect(len(sent) == 1 and len(asked) == 2,
           "one email, the mailer asked twice (its first answer was lost), although the turn "
           "was retried twice after your tool had sent it (the mailer's answer was lost, the "
           "model failed once): a retry replays the journal, and runs again every step that "
           "did not journal what it did",
           f"{len(sent)} emails to {address}: {[e['message_id'][:8] for e in sent]}; the "
           f"mailer was asked {len(asked)} times",
           "send it in a journaled step, with a key made once: message_id = await "
           "unique_key(ctx, \"message id\"); await ctx.run_typed(\"email itinerary\", "
           "mailer.notify, to=address, …, message_id=message_id)")
    other = f"check-{uuid.uuid4().hex[:6]}"  # another conversation, the same address
    answer(lab, "ItineraryAgent", "Message", {"text": "flights from AMS to LIS"}, key=other)
    answer(lab, "ItineraryAgent", "Message",
           {"text": f"please email the itinerary to {address}"}, key=other)
    sent = mailer.ledger.entries("notify", to=address)
    expect(len(sent) == 2, f"another conversation's itinerary to {address} sent too",
           f"{address} received {len(sent)} email(s) from two conversations",
           "a message id made from the address (or the conversation) makes two itineraries "
           "one message: make a random one, once, in a journaled step (unique_key)")


@check("Exercise 10.2 · a spend cap per conversation")
def check_spend_cap(lab: Lab) -> None:
    serve_scripted_model()
    key = f"check-{uuid.uuid4().hex[:6]}"
    billed: list[int] = []  # the tokens each message cost
    model.price_next(*PRICES)
    try:
        for number in range(len(PRICES)):
            before = model.bill()["tokens"]
            answer(lab, "FrugalAgent", "Message", {"text": "hello"}, key=key)
            billed.append(int(model.bill()["tokens"] - before))
            if number == 1:
                crash(lab, SERVER, "between two messages of the conversation")
    finally:
        model.clear_script()
    spent_before = [sum(billed[:n]) for n in range(len(billed))]
    asked = [spent < CAP_TOKENS for spent in spent_before]
    expect(all(bool(cost) == ask for cost, ask in zip(billed, asked, strict=True)),
           f"the model asked while the conversation had spent under {CAP_TOKENS} tokens, "
           f"never after — also once it has spent exactly {CAP_TOKENS}",
           f"tokens billed for each of {len(PRICES)} messages: {billed}",
           "before calling the model, read the conversation's total from its state "
           "(ctx.get(\"tokens\")) and answer without the model once it is at the cap (>=); "
           "after the turn, add answer[\"tokens\"] to it (ctx.set)")
    total = sum(billed)
    kept = stored_state(lab, "FrugalAgent", key)
    expect(str(total) in kept.values(), f"the conversation's spend ({total} tokens) in its "
           "state in Restate, where it survives a restart of the service",
           f"the state of FrugalAgent/{key} holds {sorted(kept)}, none of them {total}",
           "keep the total with ctx.set(\"tokens\", …) and read it with ctx.get: a "
           "variable in memory is gone after a restart, and the model's bill is not yours")
    other = f"check-{uuid.uuid4().hex[:6]}"
    before = model.bill()["tokens"]
    answer(lab, "FrugalAgent", "Message", {"text": "hello"}, key=other)
    expect(model.bill()["tokens"] > before, "another conversation still answered by the model",
           "a new conversation's first message was not sent to the model",
           "keep the total per conversation, in the virtual object's state — not in a "
           "variable that all conversations share")
