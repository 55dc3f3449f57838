"""Input checked at the edge, the same rule for every public handler: a body that cannot be
handled safely is refused with 400 naming the field and the rule — at once, before any step
runs, so nothing is half-done (no reservation, no charge, no draft)."""

from __future__ import annotations

import json
import uuid

import pytest

from restate_tutorial.lab import IngressError, Lab
from restate_tutorial.scenarios import GOOD_BOOKING
from restate_tutorial.simulated import mailer, travel

from ..services import call_as_a_handler

pytestmark = pytest.mark.usefixtures("fresh_ledgers")

GOOD = json.dumps(GOOD_BOOKING)
AMOUNT = '"amount": 1500'
CARD = '"5555555555554444"'

# (target "Service/handler" or "Service/key/handler", raw JSON body, what the 400 must say)
CASES = [
    ("BookingWorkflow/{key}/Run", GOOD.replace(AMOUNT, '"amount": NaN'),
     "'payment_info.amount' is not a finite number"),
    ("BookingWorkflow/{key}/Run", GOOD.replace(AMOUNT, '"amount": Infinity'),
     "'payment_info.amount' is not a finite number"),
    ("BookingWorkflow/{key}/Run", GOOD.replace(AMOUNT, '"amount": 1e400'),
     "not a finite number"),
    ("BookingWorkflow/{key}/Run", GOOD.replace(AMOUNT, '"amount": ' + "9" * 401),
     "'payment_info.amount' has more than 30 digits"),
    ("BookingWorkflow/{key}/Run", GOOD.replace(AMOUNT, '"amount": ' + "9" * 5_000),
     "has more than 30 digits"),
    ("BookingWorkflow/{key}/Run", GOOD.replace(AMOUNT, '"amount": 1500000000'),
     "amount must be positive and at most 1,000,000"),
    ("BookingWorkflow/{key}/Run", GOOD.replace(CARD, '"４１１１１１１１１１１１１１１１"'),
     "card_number must be 12-19 digits 0-9"),
    ("BookingWorkflow/{key}/Run", GOOD.replace(CARD, '"5555555555554444\\ud800"'),
     "'payment_info.card_number' is not valid Unicode"),
    ("BookingWorkflow/{key}/Run", "[" * 990 + "]" * 990, "nests deeper than the limit of 32"),
    ("BookingWorkflow/{key}/Run", '{"a": ' * 40 + "1" + "}" * 40, "nests deeper"),
    ("Flights/Confirm", '"\\ud800"', "the body is not valid Unicode"),
    ("CarRentals/Confirm", '"\\udc00"', "the body is not valid Unicode"),
    ("Hotels/Cancel", '"\\ud800"', "the body is not valid Unicode"),
    ("Greeter/greet", '{"name": "Edgecase", "delay_seconds": NaN}', "not a finite number"),
    ("Greeter/greet", '{"name": "Edgecase", "delay_seconds": Infinity}', "not a finite number"),
    ("Greeter/greet", '{"name": "Edgecase", "delay_seconds": 1e300}',
     "delay_seconds must be a number from 0 to 86,400"),
    ("Greeter/greet", '{"name": "\\ud83d", "delay_seconds": 0}', "'name' is not valid Unicode"),
    ("PackageTracker/{key}/RegisterPackage", '{"finalDestination": "\\udfff"}',
     "'finalDestination' is not valid Unicode"),
    ("UserFeed/{key}/ProcessPost", '{"content": "x", "metadata": "p", "n": -Infinity}',
     "'n' is not a finite number"),
]


@pytest.mark.parametrize(("target", "body", "complaint"), CASES,
                         ids=[f"{t.split('/')[0]}: {c}" for t, _, c in CASES])
def test_unsafe_input_is_a_400_naming_the_rule_and_does_nothing(
        lab: Lab, target: str, body: str, complaint: str) -> None:
    service, *rest = target.format(key=f"edge-{uuid.uuid4().hex[:8]}").split("/")
    key, handler = (rest[0], rest[1]) if len(rest) == 2 else (None, rest[0])
    with pytest.raises(IngressError) as refused:
        if service in ("Flights", "CarRentals", "Hotels"):  # private: only handlers call them
            call_as_a_handler(lab, service, handler, raw=body)
        else:
            lab.ingress.call(service, handler, body.encode(), key=key, timeout=10)
    assert refused.value.status == 400, refused.value
    assert complaint in refused.value.message, refused.value.message
    assert travel.flights.ledger.count() == travel.car_rentals.ledger.count() == 0
    assert travel.payments.ledger.count() == travel.hotels.ledger.count() == 0
    assert mailer.ledger.count(name="Edgecase") == 0
