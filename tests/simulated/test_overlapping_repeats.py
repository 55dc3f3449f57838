"""Every simulated system takes effect once when the same call arrives several times at once.

That is what happens when Restate retries a step while the first attempt is still running in a
crashed service host's worker thread (or in a real zombie process): two calls, one key, no order.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from restate_tutorial.simulated.social import Moderation, SocialMedia
from restate_tutorial.simulated.travel import PaymentAPI, ReservationAPI

REPEATS = 8  # calls that overlap, per round
ROUNDS = 150


@pytest.fixture(autouse=True)
def eager_thread_switches() -> Iterator[None]:
    """Switch threads every microsecond (not every 5 ms) so that races show up reliably."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def overlapping(call: Callable[[], Any]) -> list[Any]:
    """Run ``call`` in REPEATS threads released at the same moment; their results."""
    start = threading.Barrier(REPEATS)
    results: list[Any] = []

    def repeat() -> None:
        start.wait()
        results.append(call())

    threads = [threading.Thread(target=repeat) for _ in range(REPEATS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_overlapping_repeats_take_effect_once(round_: int) -> None:
    flights, payments, social = ReservationAPI("flights"), PaymentAPI(), SocialMedia()

    ids = overlapping(lambda: flights.reserve({"flight_id": "1"}, request_id="r1"))
    assert len(set(ids)) == 1 and flights.ledger.count("reserve") == 1
    assert flights.ledger.count("reserve (repeated)") == REPEATS - 1
    reservation = ids[0]
    overlapping(lambda: flights.confirm(reservation))
    assert flights.ledger.count("confirm") == 1

    other = flights.reserve({"flight_id": "2"}, request_id="r2")
    assert overlapping(lambda: flights.cancel(other)).count(True) == 1
    assert flights.ledger.count("cancel", effect="cancelled") == 1

    overlapping(lambda: payments.charge("k1", "5555555555554444", 10))
    assert payments.ledger.count("charge") == 1
    effects = overlapping(lambda: payments.refund("k1"))
    assert effects.count("refunded") == 1
    assert payments.ledger.count("refund", effect="refunded") == 1

    posts = overlapping(lambda: social.create_post("u1", {"content": "hi"}, request_id="p1"))
    assert len(set(posts)) == 1 and social.ledger.count("create_post") == 1
    overlapping(lambda: social.update_feed("u1", posts[0]))
    assert social.feed("u1") == [posts[0]]


def test_moderation_counts_every_overlapping_check() -> None:
    moderation = Moderation(checks_needed=REPEATS)
    statuses = overlapping(lambda: moderation.status("u1", "post"))
    assert sorted(statuses) == ["DONE"] + ["PENDING"] * (REPEATS - 1)
    assert [e["status"] for e in moderation.ledger.entries("check")][-1] == "DONE"
