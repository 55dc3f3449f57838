"""The original example's data, in one place: its services, subscriptions, booking and posts.

``make up`` serves and subscribes these; the demos, tests and benchmarks use the same values
(and the same runs, like :func:`searches_at_once`).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections import Counter
from typing import TYPE_CHECKING, Any

from .patterns import (
    approvals,
    basics,
    checkout,
    event_enrichment,
    event_transactions,
    fan_out,
    sagas,
    schedules,
    secure_booking,
)
from .simulated import quotes, travel

if TYPE_CHECKING:
    from .lab import Lab

#: Every tutorial service, served by `up`.
SERVICES: list[Any] = [basics.greeter, basics.visits, sagas.flights, sagas.car_rentals,
                        sagas.hotels, sagas.booking_workflow, event_transactions.user_feed,
                        event_enrichment.package_tracker, basics.key_demo,
                        approvals.trip_approval, secure_booking.secure_booking,
                        schedules.trip_reminders, schedules.price_watch,
                        schedules.cron_job, fan_out.fare_search, fan_out.airlines,
                        fan_out.airline_permits, fan_out.rate_limiter, fan_out.paced_mailer,
                        checkout.checkout]
#: (topic, service, handler) wired by `up` unless --no-subscribe.
SUBSCRIPTIONS: list[tuple[str, str, str]] = [
    ("social-media-posts", "UserFeed", "ProcessPost"),
    ("package-location-updates", "PackageTracker", "UpdateLocation"),
]

#: A card the simulated payment API accepts (the seed's test card is declined).
GOOD_CARD = "5555555555554444"


def booking(card_number: str = travel.DECLINED_TEST_CARD, amount: Any = 1500,
            **more: Any) -> dict[str, Any]:
    """The seed's booking request, a new copy each time, paid with ``card_number`` and
    ``amount``, with ``more`` parts added (e.g. ``hotel={...}``)."""
    return {"flights": {"flight_id": "12345", "passenger_name": "John Doe"},
            "car": {"pickup_location": "Airport", "rental_date": "2024-12-16"},
            "payment_info": {"card_number": card_number, "amount": amount}, **more}


#: The seed's request (its test card is declined, so the compensations run).
SEED_BOOKING = booking()
#: The same booking with a card that is accepted: everything is confirmed.
GOOD_BOOKING = booking(GOOD_CARD)

#: The seed's records for social-media-posts (key, value).
SEED_POSTS = [
    ("userid1", {"content": "Hi! This is my first post!", "metadata": "public"}),
    ("userid2", {"content": "Hi! This is my first post!", "metadata": "public"}),
    ("userid1", {"content": "Hi! This is my second post!", "metadata": "public"}),
]


def searches_at_once(lab: Lab, count: int, handler: str = "Search",
                     route: str = "AMS-LIS") -> dict[str, Any]:
    """``count`` fare searches started together (``FareSearch/<handler>``, one thread each):
    how long they took, and what the airlines went through (from the quote API's ledger)."""
    quotes.reset()
    answers: list[Any] = []
    started = time.monotonic()
    threads = [threading.Thread(target=lambda: answers.append(lab.ingress.call(
        "FareSearch", handler, {"route": route, "deadline_seconds": 120})))
        for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"handler": handler, "searches": count, "answered": len(answers),
            "seconds": round(time.monotonic() - started, 1),
            "most at once (an airline)": max(quotes.peaks().values()),
            "refused (429)": quotes.ledger.count("429"), "quotes": quotes.ledger.count("quote")}


#: Set to use a real model (the OpenAI client's own OPENAI_BASE_URL / OPENAI_API_KEY) instead.
REAL_MODEL_SWITCH = "RESTATE_TUTORIAL_REAL_MODEL"
_scripted_model: dict[str, Any] = {}
_scripted_model_lock = threading.Lock()


def serve_scripted_model() -> str:
    """Serve the scripted model (``simulated/model.py``) on loopback, once per process, and
    point the OpenAI client at it; its base URL. With ``RESTATE_TUTORIAL_REAL_MODEL=1`` set,
    nothing is started: the agent uses whatever ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY`` say."""
    from .lab import ServiceHost
    from .simulated import model

    if os.environ.get(REAL_MODEL_SWITCH):
        return os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1")
    with _scripted_model_lock:
        if "host" not in _scripted_model:
            _scripted_model["host"] = ServiceHost(model.app).start()
        url = f"{_scripted_model['host'].url}/v1"
    os.environ["OPENAI_BASE_URL"] = url
    os.environ["OPENAI_API_KEY"] = "scripted-model"  # any key: it checks none
    return url


def transfers_through_crashes(lab: Lab, count: int = 200, seed: int = 11,
                              crashes: int = 6) -> dict[str, Any]:
    """``count`` random transfers (seeded) among eight new accounts of 10,000 cents each, sent
    at once in ``crashes`` waves; after each wave's last COMMIT, a crash — the service host and
    restate-server in turn — before that step's result reaches Restate. Then every account is
    checked against the transfers that answered "applied": the figures, and ``exact``."""
    import random

    from . import database
    from .patterns.accounts import read_balances, script

    rng, run = random.Random(seed), uuid.uuid4().hex[:6]
    names = [f"{run}-{n}" for n in range(8)]
    for name in names:
        lab.ingress.call("Accounts", "Open", {"account": name, "balance_cents": 10_000})
    sent: list[tuple[dict[str, Any], str]] = []
    per_wave = -(-count // crashes)
    for wave in range(crashes):
        batch = [{"transfer_id": f"{run}-t{n}", "amount_cents": rng.randint(1, 3_000),
                  **dict(zip(("from", "to"), rng.sample(names, 2), strict=True))}
                 for n in range(wave * per_wave, min(count, (wave + 1) * per_wave))]
        committed = script.hold_after_commit(batch[-1]["transfer_id"])
        sent += [(body, lab.ingress.send("Accounts", "Transfer", body)) for body in batch]
        committed.wait(60)
        if wave % 2:
            lab.server.restart()
        else:
            for host in lab.service_hosts:
                host.restart()
    balance, _, answers = outcome_of_transfers(lab, sent, dict.fromkeys(names, 10_000), 120)
    applied = answers.pop("applied", 0)
    table = read_balances(names)
    with database.connect() as conn:
        rows = conn.execute("SELECT count(*) FROM transfers WHERE transfer_id LIKE %s",
                            (f"{run}-t%",)).fetchone()[0]
    return {"transfers": count, "applied": applied,
            "refused (not enough money)": sum(answers.values()),
            "crashes after a COMMIT": crashes, "rows in transfers": rows,
            "total before": 80_000, "total after": sum(table.values()),
            "exact": table == balance and rows == applied and sum(table.values()) == 80_000}


def outcome_of_transfers(lab: Lab, sent: list[tuple[dict[str, Any], str]],
                         balances: dict[str, int], timeout: float
                         ) -> tuple[dict[str, int], set[str], Counter[str]]:
    """Wait for each transfer ``sent`` (body, invocation id) to answer: the balances the
    applied ones make from ``balances`` (each transfer_id applied once, however often sent),
    the transfer_ids applied, and how many answered what ("applied", "refused (409)")."""
    from .lab.errors import IngressError

    expected, applied, answers = dict(balances), set(), Counter[str]()
    for body, invocation in sent:
        try:
            lab.ingress.attach(invocation, timeout=timeout)
        except IngressError as error:
            answers[f"refused ({error.status})"] += 1
            continue
        answers["applied"] += 1
        if body["transfer_id"] not in applied:
            applied.add(body["transfer_id"])
            expected[body["from"]] -= body["amount_cents"]
            expected[body["to"]] += body["amount_cents"]
    return expected, applied, answers


def interest_with_a_zombie(lab: Lab, service: str = "Accounts") -> dict[str, Any]:
    """1 % interest for November on a new account of 100,000 cents, through ``service``
    (``Accounts``, or ``NaiveAccounts``: no version check). Its first attempt reads the account,
    then freezes before its write; 50,000 cents are paid in; Restate gives up on the frozen
    attempt and retries (about 7 s); 20,000 more are paid in; then the zombie wakes and writes.
    The figures: what was paid, the balance before and after the zombie woke, and whether the
    account holds every cent (``exact``)."""
    from .patterns.accounts import read_balance, script

    run = uuid.uuid4().hex[:6]
    saver, payer = f"saver-{run}", f"payer-{run}"
    for account in (saver, payer):
        lab.ingress.call("Accounts", "Open", {"account": account, "balance_cents": 100_000})

    def pay_in(cents: int) -> None:
        lab.ingress.call("Accounts", "Transfer", {"transfer_id": f"in-{cents}-{run}",
                                                  "from": payer, "to": saver,
                                                  "amount_cents": cents})

    zombie = script.freeze(f"{saver}/2026-11")
    invocation = lab.ingress.send(service, "AddInterest",
                                  {"account": saver, "month": "2026-11", "rate_bp": 100})
    zombie.frozen.wait(30)  # it has read the account (journaled) and froze before its write
    pay_in(50_000)
    interest = lab.ingress.attach(invocation, timeout=60)["interest_cents"]  # the retry's
    pay_in(20_000)
    before = read_balance(saver)
    zombie.thaw.set()  # it wakes and writes what it computed from its old read
    zombie.ended.wait(30)
    after, expected = read_balance(saver), 100_000 + 50_000 + 20_000 + interest
    return {"invocation": invocation, "account": saver, "interest paid": interest,
            "paid in meanwhile": 70_000, "balance before the zombie woke": before,
            "balance after": after, "expected": expected, "exact": after == expected}
