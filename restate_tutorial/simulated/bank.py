"""A simulated bank's 3-D Secure check — NOT part of Restate. It answers later, over HTTP.

The caller hands the bank an awakeable id. Once the card holder has answered (a moment later,
on a thread of the bank's own), the bank resolves that awakeable through Restate's ingress —
``POST /restate/awakeables/<id>/resolve`` with the request id it was given, so the caller knows
the answer is the bank's — or rejects it (``…/reject``), as any outside system would; for a card
holder who walks away it never answers at all. What each card holder does is scripted per card
(default: approve), never random.
"""

from __future__ import annotations

import threading
import time
from urllib.parse import quote

import httpx

from .ledger import Ledger
from .travel import mask_card

ledger = Ledger("bank")
ANSWERS = ("approve", "decline", "ignore")
#: How long a card holder takes to answer.
answer_seconds = 0.5
_ingress_url: str | None = None
_answers: dict[str, str] = {}
_lock = threading.Lock()


def connect(ingress_url: str) -> None:
    """Where the bank sends its answers: a Restate ingress (the lab's, or yours)."""
    global _ingress_url
    _ingress_url = ingress_url.rstrip("/")


def script(card_number: str, answer: str) -> None:
    """What the holder of ``card_number`` answers from now on: approve, decline or ignore."""
    if answer not in ANSWERS:
        raise ValueError(f"unknown answer {answer!r}: pick one of {', '.join(ANSWERS)}")
    _answers[card_number] = answer


def verify(card_number: str, amount: float, awakeable_id: str, request_id: str) -> None:
    """Ask the card holder to confirm the payment; the answer goes to ``awakeable_id``, later.
    A repeat of ``request_id`` (a retried step) asks nothing new."""
    if _ingress_url is None:
        raise RuntimeError("the bank does not know where to answer: call bank.connect(url)")
    with _lock:
        if ledger.count("verify", request_id=request_id):
            ledger.record("verify (repeated)", request_id=request_id)
            return
        answer = _answers.get(card_number, "approve")
        ledger.record("verify", request_id=request_id, card=mask_card(card_number),
                      amount=amount, answer=answer)
    if answer != "ignore":
        threading.Thread(target=_answer, args=(_ingress_url, awakeable_id, answer, request_id),
                         name="bank-3ds", daemon=True).start()


def _answer(ingress_url: str, awakeable_id: str, answer: str, request_id: str) -> None:
    """Send the answer; like any webhook, try again while Restate cannot be reached (60 s)."""
    time.sleep(answer_seconds)  # the card holder opens the bank's app
    url = f"{ingress_url}/restate/awakeables/{quote(awakeable_id, safe='')}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if answer == "approve":
                response = httpx.post(f"{url}/resolve", timeout=10, json={
                    "request_id": request_id, "answer": "approved"})
            else:
                response = httpx.post(f"{url}/reject", timeout=10,
                                      content="the card holder declined the payment",
                                      headers={"content-type": "text/plain"})
            if response.status_code < 500:
                ledger.record("answer", answer=answer, status=response.status_code)
                return
        except httpx.TransportError:
            pass
        ledger.record("answer (Restate unreachable, retrying)", answer=answer)
        if time.monotonic() > deadline:
            return
        time.sleep(0.5)


def reset() -> None:
    ledger.clear()
    _answers.clear()
