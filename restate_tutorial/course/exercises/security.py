"""Checks for the exercises of notebook 13 (who may call what)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import threading
import uuid
from typing import Any

from ...lab import IngressError, Lab
from ...lab.admin import sql_string
from ...simulated import mailer
from .checking import (
    HOST,
    SERVER,
    NotYet,
    answer,
    check,
    crash,
    eventually,
    expect,
    journal_entries,
    journal_values,
    settle,
    stored_state,
)

#: How long the checks give a workflow to start waiting, or to end once it may.
WITHIN = 10.0


def _waiting(lab: Lab, run: str, what: str) -> None:
    """Return once ``run`` waits on its promise; a "not yet" with its failure if it fails."""
    if eventually(lambda: any(e["entry_type"] == "Command: GetPromise"
                              for e in journal_entries(lab, run)), WITHIN):
        return
    [row] = lab.admin.sql("SELECT status, last_failure FROM sys_invocation WHERE id = "
                          f"{sql_string(run)}")
    failure = (row.get("last_failure") or "").split("\n", 1)[0]
    raise NotYet(f"{what} to wait for its promise", f"it is {row['status']}"
                 + (f"; it failed, and Restate retried it: {failure}" if failure else ""),
                 "logbook.show() shows its errors; fix them and run its cell again")


def _forged(lab: Lab, claim: str, decision: dict[str, Any]) -> IngressError | None:
    """Send a decision; the error it was refused with, or None if it was taken."""
    try:
        answer(lab, "ExpenseClaim", "Decide", decision, key=claim)
    except IngressError as refused:
        return refused
    return None


def _status(lab: Lab, invocation: str) -> str:
    rows = lab.admin.sql(f"SELECT status FROM sys_invocation WHERE id = {sql_string(invocation)}")
    return rows[0]["status"] if rows else "unknown"


@check("Exercise 13.1 · only the manager decides")
def check_decision_token(lab: Lab) -> None:
    claim = f"claim-{uuid.uuid4().hex[:8]}"
    manager = f"manager-{claim}"
    run = lab.ingress.send("ExpenseClaim", "Run", {"amount": 120, "manager": manager}, key=claim)
    _waiting(lab, run, "ExpenseClaim/Run")
    [asked] = mailer.inbox(manager)
    token = asked["body"].rsplit(" ", 1)[-1]
    crash(lab, HOST, "while Run waits for the decision")
    kept = stored_state(lab, "ExpenseClaim", claim).get("token")
    expect(kept == json.dumps(token), "the token in the workflow's state (\"token\")",
           f"Restate's state of {claim} holds {sorted(stored_state(lab, 'ExpenseClaim', claim))}"
           " — a token kept in the process is gone when it restarts",
           "in Run, ctx.set(\"token\", token) right after the step that makes it; Decide reads "
           "it with await ctx.get(\"token\", type_hint=str)")
    for what, forged in (("a guessed token", {"approved": True, "token": "guess"}),
                         ("no token at all", {"approved": True}),
                         ("an empty token", {"approved": True, "token": ""})):
        refused = _forged(lab, claim, forged)
        expect(refused is not None and refused.status == 403,
               f"a decision with {what} to be refused with HTTP 403",
               f"Decide answered {refused or 'with success'}",
               "in Decide, before anything else: if decision.get(\"token\") != await "
               "ctx.get(\"token\", type_hint=str), raise TerminalError(\"…\", 403)")
        expect(_status(lab, run) != "completed", "Run to still wait after a refused decision",
               f"Run ended after the decision with {what}",
               "refuse the decision before resolving the promise: a resolved promise stays "
               "resolved")
    crash(lab, SERVER, "before the manager decides")
    refused = _forged(lab, claim, {"approved": True, "token": token})
    expect(refused is None, "the manager's decision, with the token of their message, to be "
           "taken", f"Decide answered {refused}", "refuse a wrong token before resolving the "
           "promise: a forged decision completed it first")
    result = settle(lab, run, "ExpenseClaim/Run", within=WITHIN)
    expect(isinstance(result, dict) and result.get("approved") is True,
           "the manager's decision, with the token of their message, to approve the claim",
           f"Run returned {result!r}", "leave the rest of Run as the starter has it")


# --- 13.2 ----------------------------------------------------------------------------------

MERCHANT = "Café Nuvem"
#: What shows the merchant in a value however it is written ("Caf\\u00e9" in JSON).
MARKER = "Nuvem"


def _run_async(coroutine: Any) -> Any:
    """The result of ``coroutine``, run in a thread of its own (a notebook's loop is busy);
    None if it raised."""
    result: list[Any] = []

    def run() -> None:
        try:
            result.append(asyncio.run(coroutine))
        except Exception:  # noqa: BLE001 - whatever your decode raised: not opened
            pass

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(WITHIN)
    return result[0] if result else None


def _shows(marker: str, value: str) -> bool:
    """Whether ``value`` shows ``marker`` as is, or in base64 (which hides nothing)."""
    if marker in value:
        return True
    for run in re.findall(r"[A-Za-z0-9+/=_-]{12,}", value):
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                if marker.encode() in decode(run + "=" * (-len(run) % 4)):
                    return True
            except (binascii.Error, ValueError):
                pass
    return False


def _restate_holds(lab: Lab, invocation: str, key: str) -> list[str]:
    """The values Restate holds for the run: its journal's payloads, and its state."""
    return journal_values(lab, invocation) + list(stored_state(lab, "ReceiptVault", key).values())


@check("Exercise 13.2 · a codec that survives a key rotation")
def check_key_rotation(lab: Lab, codec: Any, ring: Any) -> None:
    sealed = [codec.encode(b'{"same": "value"}') for _ in range(2)]
    expect(sealed[0] != sealed[1], "the same value sealed twice to give two different "
           "ciphertexts (a fresh nonce each time)", "both sealed values are the same bytes",
           "make a new nonce for every value: os.urandom(12) inside encode, never once for all")
    claim = f"receipt-{uuid.uuid4().hex[:8]}"
    body = codec.encode(json.dumps({"merchant": MERCHANT, "amount": 42}).encode())
    run = lab.ingress.send("ReceiptVault", "Run", body, key=claim)
    _waiting(lab, run, "ReceiptVault/Run")
    shown = [v for v in _restate_holds(lab, run, claim) if _shows(MARKER, v)]
    expect(not shown, "Restate to hold only ciphertext (no merchant in its journal or state)",
           f"Restate's records show the merchant: {shown[0][:120] if shown else ''!r}",
           "seal with AESGCM(key).encrypt(nonce, buf, …) and store the nonce with the "
           "ciphertext: base64 or JSON alone hides nothing")
    old = ring.current
    new = ring.rotate()
    print(f"🔑 the check rotates the key ring: {old} → {new}", flush=True)
    crash(lab, HOST, "while Run waits: its journal, sealed with the old key, is replayed")
    crash(lab, SERVER, "before the approval")
    answer(lab, "ReceiptVault", "Approve", key=claim)
    try:
        result = settle(lab, run, "ReceiptVault/Run", within=WITHIN)
    except NotYet as stuck:
        raise NotYet(stuck.expected, stuck.happened,
                     "the replay reads values sealed before the rotation: name the key in each "
                     "sealed value (its id, e.g. in the JSON), and in decode open it with "
                     "ring.keys[that id], not with the current key (never a TerminalError "
                     "there: a value that cannot open yet must be retried)") from None
    try:  # the answer, sealed by your codec: opened with it
        raw = result if isinstance(result, bytes) else json.dumps(result).encode()
        opened = json.loads(_run_async(codec.decode(raw)))
    except (TypeError, ValueError):
        opened = None
    expect(isinstance(opened, dict) and opened.get("receipt", {}).get("merchant") == MERCHANT
           and opened.get("approved") is True,
           f"Run to return the receipt ({MERCHANT}, 42) and approved: true, opened by your codec",
           f"Run returned {result!r}",
           "decode must give back exactly the bytes encode was given: raise if it cannot open "
           "a value (Restate retries), never return it unopened")
    written = stored_state(lab, "ReceiptVault", claim)
    expect(bool(written) and not any(_shows(MARKER, v) for v in written.values()),
           "the state sealed too", f"the state holds {written}",
           "the codec sees every value: keep it on the deployment (lab.serve(..., "
           "journal_value_codec=...))")
