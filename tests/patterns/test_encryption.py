"""Wallet behind the sealing codec: Restate's journal and state hold only ciphertext, the
handlers work with plain values, keys rotate, and a lost key loses nothing."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from restate_tutorial.course.exercises.checking import journal_values
from restate_tutorial.lab import IngressError, Lab
from restate_tutorial.patterns.encryption import CODEC, KEYS, wallet

CARD = "4111111111111111"


@pytest.fixture
def served(lab: Lab) -> Iterator[Lab]:
    """The wallet served with the codec; the key ring as it was, afterwards."""
    keys, current = dict(KEYS.keys), KEYS.current
    lab.serve(wallet, journal_value_codec=CODEC)
    yield lab
    KEYS.keys, KEYS.current = keys, current


def save(lab: Lab, owner: str, card: str = CARD) -> dict[str, str]:
    sealed = lab.ingress.call("Wallet", "Save",
                              CODEC.seal_json({"holder": "Ada", "card_number": card}), key=owner)
    return CODEC.open_json(sealed)


def what_restate_holds(lab: Lab, owner: str) -> str:
    """The journal entries of the owner's Save calls and its state, as Restate's SQL shows them,
    with every journal value decoded as text."""
    saves = lab.admin.sql(f"SELECT id FROM sys_invocation WHERE target = 'Wallet/{owner}/Save'")
    journal = [r["entry_json"] for save in saves for r in lab.admin.sql(
        f"SELECT entry_json FROM sys_journal WHERE id = '{save['id']}'")]
    state = lab.admin.sql(f"SELECT value_utf8 FROM state WHERE service_name = 'Wallet' AND "
                          f"service_key = '{owner}'")
    values = [v for save in saves for v in journal_values(lab, save["id"])]
    return "\n".join(journal + [r["value_utf8"] for r in state] + values)


def test_the_handlers_work_and_restate_holds_no_card_number(served: Lab) -> None:
    owner = f"ada-{uuid.uuid4().hex[:6]}"
    assert save(served, owner) == {"holder": "Ada", "card": "************1111"}
    assert CODEC.open_json(served.ingress.get("Wallet", "Card", key=owner))["card"] == \
        "************1111"
    held = what_restate_holds(served, owner)
    assert '"sealed": "aes-256-gcm"' in held and CARD not in held and "Ada" not in held


def test_a_plain_or_tampered_body_is_400_and_stores_nothing(served: Lab) -> None:
    owner = f"eve-{uuid.uuid4().hex[:6]}"
    sealed = json.loads(CODEC.seal_json({"holder": "Eve", "card_number": CARD}))
    sealed["data"] = sealed["data"][:-4] + ("AAAA" if sealed["data"][-4:] != "AAAA" else "BBBB")
    unknown_key = {**json.loads(CODEC.seal_json({"holder": "Eve"})), "key": "k99"}
    for body in ({"holder": "Eve", "card_number": CARD}, json.dumps(sealed).encode(),
                 unknown_key, {"sealed": "aes-256-gcm"}, b"\xff"):
        with pytest.raises(IngressError) as refused:
            served.ingress.call("Wallet", "Save", body, key=owner)
        assert refused.value.status == 400, refused.value
    with pytest.raises(IngressError) as none:
        served.ingress.get("Wallet", "Card", key=owner)
    assert none.value.status == 404


def test_after_a_rotation_new_values_use_the_new_key_and_old_ones_still_open(
        served: Lab) -> None:
    old, new = f"old-{uuid.uuid4().hex[:6]}", f"new-{uuid.uuid4().hex[:6]}"
    save(served, old)
    first = KEYS.current
    second = KEYS.rotate()
    save(served, new, "5555555555554444")
    sealed_with = {owner: json.loads(served.admin.sql(
        f"SELECT value_utf8 FROM state WHERE service_name = 'Wallet' AND service_key = "
        f"'{owner}'")[0]["value_utf8"])["key"] for owner in (old, new)}
    assert sealed_with == {old: first, new: second}
    assert CODEC.open_json(served.ingress.get("Wallet", "Card", key=old))["card"].endswith("1111")
    assert CODEC.open_json(served.ingress.get("Wallet", "Card", key=new))["card"].endswith("4444")


def test_a_value_whose_key_is_gone_waits_for_it_and_loses_nothing(served: Lab) -> None:
    owner = f"lost-{uuid.uuid4().hex[:6]}"
    save(served, owner)
    sealed_by = KEYS.current
    KEYS.rotate()
    key = KEYS.forget(sealed_by)
    reading = served.ingress.send("Wallet", "Card", key=owner)
    served.admin.wait_for_status(reading, "backing-off", failure="does not hold")
    KEYS.keys[sealed_by] = key  # the key is back: the retry opens the value
    assert CODEC.open_json(served.ingress.attach(reading))["card"] == "************1111"
