"""A simulated mail service for the basics notebook: drafts and sends greetings."""

from __future__ import annotations

import uuid

from .ledger import Ledger

ledger = Ledger("mailer")


def draft(name: str) -> str:
    """Draft a greeting; returns its id (a fresh random id on every call)."""
    greeting_id = str(uuid.uuid4())
    ledger.record("draft", greeting_id=greeting_id, name=name)
    return greeting_id


def send(greeting_id: str) -> None:
    ledger.record("send", greeting_id=greeting_id)
