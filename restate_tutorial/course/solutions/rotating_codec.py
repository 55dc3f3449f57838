"""Exercise 13.2: a codec that names the key of each value, so values sealed before a rotation
still open when Restate replays them."""

from __future__ import annotations

import base64
import json
import os

import restate
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from restate import RunOptions, WorkflowContext, WorkflowSharedContext

from restate_tutorial.patterns.encryption import KeyRing

ring = KeyRing()
ring.rotate()


class ClaimCodec(restate.JournalValueCodec):
    def encode(self, buf: bytes) -> bytes:
        nonce, key_id = os.urandom(12), ring.current
        data = AESGCM(ring.keys[key_id]).encrypt(nonce, buf, None)
        return json.dumps({"key": key_id, "data": base64.b64encode(nonce + data).decode()}
                          ).encode()

    async def decode(self, buf: bytes) -> bytes:
        sealed = json.loads(buf)
        raw = base64.b64decode(sealed["data"])
        # The key that sealed it: after a rotation, the replay reads old values too.
        return AESGCM(ring.keys[sealed["key"]]).decrypt(raw[:12], raw[12:], None)


receipt_vault = restate.Workflow("ReceiptVault")


def scan(merchant: str, amount: float) -> dict:
    """A simulated receipt scanner."""
    return {"merchant": merchant, "amount": amount}


@receipt_vault.main(name="Run")
async def run(ctx: WorkflowContext, claim: dict) -> dict:
    receipt = await ctx.run_typed("scan receipt", scan, RunOptions(), claim["merchant"],
                                  claim["amount"])
    ctx.set("receipt", receipt)
    approved = await ctx.promise("approval", type_hint=bool).value()
    return {"receipt": receipt, "approved": approved}


@receipt_vault.handler(name="Approve")
async def approve(ctx: WorkflowSharedContext) -> None:
    await ctx.promise("approval", type_hint=bool).resolve(True)
