"""A simulated mail service: greetings (notebook 00) and messages to people (notebook 07)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

from .ledger import Ledger, ScriptedFailures

ledger = Ledger("mailer")
failures = ScriptedFailures()
_sending = threading.Lock()
_forwards: list[Callable[[str, str, str], None]] = []


def draft(name: str) -> str:
    """Draft a greeting; returns its id (a fresh random id on every call)."""
    greeting_id = str(uuid.uuid4())
    ledger.record("draft", greeting_id=greeting_id, name=name)
    return greeting_id


def send(greeting_id: str) -> None:
    ledger.record("send", greeting_id=greeting_id)


def notify(to: str, subject: str, body: str, message_id: str) -> None:
    """Send ``to`` a message; one ``message_id`` is one message, however often it is sent."""
    with _sending:  # a repeat racing the first send is still a repeat
        repeat = ledger.count("notify", message_id=message_id) > 0
        ledger.record("notify (repeated)" if repeat else "notify", to=to, subject=subject,
                      body=body, message_id=message_id)
    if not repeat:
        for forward in _forwards:
            forward(to, subject, body)
    failures.check_answer("notify")


def forward(to: Callable[[str, str, str], None]) -> None:
    """Also hand every new message to ``to(recipient, subject, body)`` (``make up`` prints it)."""
    _forwards.append(to)


def inbox(to: str) -> list[dict[str, str]]:
    """The messages ``to`` received (repeats once), oldest first."""
    return [{"subject": e["subject"], "body": e["body"]}
            for e in ledger.entries("notify", to=to)]


def reset() -> None:
    ledger.clear()
    failures.clear()
