"""Simulated flight, car-rental and payment APIs (stand-ins for third-party systems).

Flights and car rentals book in two phases (reserve → confirm or cancel, by reservation id).
Payments go through in one shot, deduplicated by a client-generated idempotency key.
Every call that reaches an API is written to its ledger — a repeated one (same idempotency key
or request id) as "<action> (repeated)" with no second effect, a refused confirmation as
"confirm (refused)" — except scripted failures, which the API's ``failures`` count instead.
Each check-and-record happens under one lock, so overlapping repeats (a retry racing a step
still running in a crashed host's thread) take effect once. Card numbers are only ever masked.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

from .ledger import Ledger, ScriptedFailures

#: The well-known test card: the payment API declines it (as the seed's scenario expects).
DECLINED_TEST_CARD = "4111111111111111"
DECLINE_MESSAGE = "This payment should never be accepted! Aborting booking."


def mask_card(card_number: str) -> str:
    """'4111111111111111' → '************1111'."""
    digits = "".join(c for c in str(card_number) if c.isdigit())
    return "*" * max(len(digits) - 4, 0) + digits[-4:]


class ReservationClosed(Exception):
    """Confirming a reservation that was cancelled (or never made): no retry will help."""


class ReservationAPI:
    """A two-phase booking API: reserve → (confirm | cancel). Every call is idempotent."""

    def __init__(self, system: str) -> None:
        self.ledger = Ledger(system)
        self.failures = ScriptedFailures()
        self._status: dict[str, str] = {}
        self._by_request: dict[str, str] = {}  # request id → reservation id
        self._lock = threading.Lock()

    def reserve(self, details: dict[str, Any], request_id: str) -> str:
        """Reserve; the same ``request_id`` again returns the same reservation (idempotent)."""
        self.failures.check("reserve")
        with self._lock:  # check and record at once: two overlapping repeats reserve once
            reservation_id = self._by_request.get(request_id)
            if reservation_id is not None:
                self.ledger.record("reserve (repeated)", reservation_id=reservation_id,
                                   request_id=request_id)
            else:
                reservation_id = self._by_request[request_id] = str(uuid.uuid4())
                self._status[reservation_id] = "reserved"
                self.ledger.record("reserve", reservation_id=reservation_id,
                                   request_id=request_id, **details)
        self.failures.check_answer("reserve")
        return reservation_id

    def confirm(self, reservation_id: str) -> None:
        """Confirm; confirming a confirmed reservation again changes nothing (idempotent)."""
        self.failures.check("confirm")
        with self._lock:
            status = self._status.get(reservation_id)
            if status not in ("reserved", "confirmed"):
                self.ledger.record("confirm (refused)", reservation_id=reservation_id,
                                   status=status or "unknown")
                raise ReservationClosed(f"Reservation {reservation_id} is {status or 'unknown'}, "
                                        "so it cannot be confirmed.")
            self._status[reservation_id] = "confirmed"
            self.ledger.record("confirm" if status == "reserved" else "confirm (repeated)",
                               reservation_id=reservation_id)
        self.failures.check_answer("confirm")

    def cancel(self, reservation_id: str) -> bool:
        """Cancel; ``False`` (and nothing changes) when it was already cancelled."""
        self.failures.check("cancel")
        with self._lock:
            already = self._status.get(reservation_id) == "cancelled"
            self._status[reservation_id] = "cancelled"
            self.ledger.record("cancel", reservation_id=reservation_id,
                               effect="already cancelled" if already else "cancelled")
        self.failures.check_answer("cancel")
        return not already

    def status(self, reservation_id: str) -> str | None:
        with self._lock:
            return self._status.get(reservation_id)


class PaymentDeclined(Exception):
    """The payment API said no; retrying will not change its mind."""


class PaymentAPI:
    """One-shot charges, deduplicated by idempotency key; refunds look the key up."""

    def __init__(self) -> None:
        self.ledger = Ledger("payments")
        self.failures = ScriptedFailures()
        self._charged: dict[str, str] = {}  # idempotency key → "charged" | "refunded"
        self._declined: set[str] = set()  # idempotency keys whose charge was declined
        self._lock = threading.Lock()

    def charge(self, idempotency_key: str, card_number: str, amount: float) -> str:
        """Charge once per key (a repeated key returns the same payment, no second charge).
        Scripted failures: of any charge ("charge"), or of this key's ("charge <key>")."""
        self.failures.check("charge")
        self.failures.check(f"charge {idempotency_key}")
        card = mask_card(card_number)
        with self._lock:  # check and record at once: two overlapping repeats charge once
            if card_number == DECLINED_TEST_CARD:  # a repeated key gets the same decline
                repeated = idempotency_key in self._declined
                self._declined.add(idempotency_key)
                self.ledger.record("decline (repeated)" if repeated else "decline",
                                   payment_id=idempotency_key, card=card, amount=amount)
                raise PaymentDeclined(DECLINE_MESSAGE)
            repeated = idempotency_key in self._charged
            self._charged.setdefault(idempotency_key, "charged")
            self.ledger.record("charge (repeated)" if repeated else "charge",
                               payment_id=idempotency_key, card=card, amount=amount)
        self.failures.check_answer("charge")
        return idempotency_key

    def refund(self, idempotency_key: str) -> str:
        """Refund whatever the key charged; says what it did (idempotent)."""
        self.failures.check("refund")
        with self._lock:
            before = self._charged.get(idempotency_key)
            if before == "charged":
                self._charged[idempotency_key] = "refunded"
            effect = {"charged": "refunded", "refunded": "already refunded"}.get(
                before or "", "nothing was charged")
            self.ledger.record("refund", payment_id=idempotency_key, effect=effect)
        self.failures.check_answer("refund")
        return effect


class LoyaltyAPI:
    """Loyalty points, the way many real APIs are: every call adds points, *unless* the caller
    passes a ``request_id`` that the API has seen before (then it is a repeat, and adds none)."""

    def __init__(self) -> None:
        self.ledger = Ledger("loyalty")
        self.failures = ScriptedFailures()
        self._balances: dict[str, int] = {}
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def add_points(self, member: str, points: int, request_id: str | None = None) -> int:
        """Add ``points`` to ``member``; returns the new balance."""
        self.failures.check("add_points")
        with self._lock:
            repeated = request_id is not None and request_id in self._seen
            if request_id is not None:
                self._seen.add(request_id)
            if not repeated:
                self._balances[member] = self._balances.get(member, 0) + points
            balance = self._balances.get(member, 0)
            self.ledger.record("add_points (repeated)" if repeated else "add_points",
                               member=member, points=points, request_id=request_id)
        self.failures.check_answer("add_points")
        return balance

    def balance(self, member: str) -> int:
        with self._lock:
            return self._balances.get(member, 0)


flights = ReservationAPI("flights")
car_rentals = ReservationAPI("car-rentals")
hotels = ReservationAPI("hotels")  # for the exercises of notebook 01
payments = PaymentAPI()
loyalty = LoyaltyAPI()  # for the exercises of notebook 01


def saga_history() -> dict[str, list[str]]:
    """Every call the flight, car-rental and payment APIs saw, in order, repeats included: what
    one booking did to the world."""
    return {api.ledger.system: api.ledger.history() for api in (flights, car_rentals, payments)}


def reset() -> None:
    """Forget ledgers and scripted failures (e.g. at the start of a notebook)."""
    for api in (flights, car_rentals, hotels, payments, loyalty):
        api.ledger.clear()
        api.failures.clear()
