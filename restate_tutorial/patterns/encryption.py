"""Payloads Restate keeps but cannot read: a journal codec that encrypts, with keys that rotate.

    client ──(the body sealed with the current key)──▶ ingress ──▶ journal: ciphertext
    Wallet/<owner>/Save   {"holder": str, "card_number": str}
      ├─ run "mask card"     its result journaled sealed
      └─ state "card"        written sealed with the current key
    Wallet/<owner>/Card (shared) → {"holder", "card": masked}, sealed for the caller to open

Restate stores what it is given: a handler's input in the Input entry of the journal, each
step's result, each state value, each output — readable through its SQL by anyone who can reach
the admin API. The SDK's journal value codec (``restate.app(..., journal_value_codec=...)``)
sits between the serde and the wire: this one seals every value with AES-256-GCM, so Restate
holds only ciphertext while the handlers work with plain values. Each sealed value names the key
that sealed it: after ``rotate`` a new key seals every new value and the old keys still open
the old ones. A value whose key is gone waits (retried, nothing lost) until the key is back.

The key ring lives in this process here; a real one comes from a key management service.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from typing import Any

import restate
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from restate import ObjectContext, ObjectSharedContext, RunOptions, TerminalError

from ..simulated.travel import mask_card
from .payloads import clip, fields

#: What marks a sealed value.
SEALED = "aes-256-gcm"


@dataclass
class KeyRing:
    """AES-256 keys by id: ``current`` seals, every key opens what it sealed."""

    keys: dict[str, bytes] = field(default_factory=dict)
    current: str = ""

    def rotate(self) -> str:
        """A new key seals from now on; returns its id."""
        key_id = f"k{len(self.keys) + 1}"
        self.keys[key_id] = AESGCM.generate_key(bit_length=256)
        self.current = key_id
        return key_id

    def forget(self, key_id: str) -> bytes:
        """Drop a key (what it sealed cannot be opened until it is back); returns it."""
        if key_id == self.current:
            raise ValueError(f"key {key_id!r} seals new values: rotate first")
        return self.keys.pop(key_id)


class SealingCodec(restate.JournalValueCodec):
    """Every journal value as ``{"sealed": "aes-256-gcm", "key": id, "data": base64}``; the
    key id is authenticated with the data, so no value passes for another key's."""

    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring

    def encode(self, buf: bytes) -> bytes:
        nonce, key_id = os.urandom(12), self.ring.current
        data = AESGCM(self.ring.keys[key_id]).encrypt(nonce, buf, key_id.encode())
        return json.dumps({"sealed": SEALED, "key": key_id,
                           "data": base64.b64encode(nonce + data).decode()}).encode()

    async def decode(self, buf: bytes) -> bytes:
        return self.open(buf)

    def open(self, buf: bytes) -> bytes:
        try:
            sealed = json.loads(buf)
            key_id, raw = sealed["key"], base64.b64decode(sealed["data"], validate=True)
            if sealed["sealed"] != SEALED or len(raw) < 28:
                raise ValueError
        except (ValueError, TypeError, KeyError):
            raise TerminalError("not a sealed value: seal it with the wallet's key ring "
                                "first", 400) from None
        if key_id not in self.ring.keys:  # not terminal: it is retried until the key is back
            raise LookupError(f"a value sealed with key {key_id!r}, which the key ring does "
                              "not hold")
        try:
            return AESGCM(self.ring.keys[key_id]).decrypt(raw[:12], raw[12:], key_id.encode())
        except InvalidTag:
            raise TerminalError(f"a sealed value that key {key_id!r} does not open: changed, "
                                "or sealed elsewhere", 400) from None

    def seal_json(self, value: Any) -> bytes:
        """A request body, sealed as a client sends it."""
        return self.encode(json.dumps(value).encode())

    def open_json(self, sealed: Any) -> Any:
        """An answer (parsed JSON of a sealed value), opened."""
        return json.loads(self.open(json.dumps(sealed).encode()))


#: The tutorial's key ring (one key to start with) and its codec.
KEYS = KeyRing()
KEYS.rotate()
CODEC = SealingCodec(KEYS)

wallet = restate.VirtualObject("Wallet")


@wallet.handler(name="Save")
async def save(ctx: ObjectContext, request: dict[str, Any]) -> dict[str, str]:
    card = fields(request, "card", holder=str, card_number=str)
    # A journaled step: its result is sealed in the journal too.
    masked = await ctx.run_typed("mask card", mask_card, RunOptions(), card["card_number"])
    ctx.set("card", card)  # sealed with the current key
    return {"holder": card["holder"], "card": masked}


@wallet.handler(name="Card", kind="shared")
async def show(ctx: ObjectSharedContext) -> dict[str, str]:
    card = await ctx.get("card", type_hint=dict)  # opened with the key that sealed it
    if card is None:
        raise TerminalError(f"no card saved for {clip(ctx.key())}", 404)
    return {"holder": card["holder"], "card": mask_card(card["card_number"])}
