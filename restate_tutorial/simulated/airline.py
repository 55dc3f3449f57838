"""A simulated airline for notebook 05: seats, boarding call-backs and boarding passes."""

from __future__ import annotations

import threading

from .ledger import Ledger

ledger = Ledger("airline")
_lock = threading.Lock()
_seats: dict[str, str] = {}  # request id → seat


def assign_seat(trip_id: str, request_id: str) -> str:
    """A seat for the trip; the same ``request_id`` again gets the same seat (idempotent)."""
    with _lock:
        seat = _seats.get(request_id)
        if seat is not None:
            ledger.record("assign seat (repeated)", trip_id=trip_id, seat=seat)
        else:
            seat = _seats[request_id] = f"{len(_seats) % 30 + 1}{'ABCDEF'[len(_seats) % 6]}"
            ledger.record("assign seat", trip_id=trip_id, seat=seat, request_id=request_id)
    return seat


def call_back_when_boarding(trip_id: str, callback_id: str) -> None:
    """The airline will resolve ``callback_id`` (a Restate awakeable) once boarding opens."""
    ledger.record("call back when boarding", trip_id=trip_id, callback_id=callback_id)


def callback_id(trip_id: str) -> str | None:
    """The newest call-back the airline holds for the trip (what it resolves at boarding)."""
    entries = ledger.entries("call back when boarding", trip_id=trip_id)
    return entries[-1]["callback_id"] if entries else None


def send_boarding_pass(trip_id: str, text: str) -> None:
    ledger.record("send boarding pass", trip_id=trip_id, text=text)


def reset() -> None:
    with _lock:
        ledger.clear()
        _seats.clear()
