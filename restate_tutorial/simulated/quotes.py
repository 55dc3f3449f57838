"""Simulated airline quote APIs for notebook 09 — NOT part of Restate.

Five airlines answer fare quotes, each after a latency. Like many real APIs, each accepts at
most ``CAPACITY`` requests at once and refuses more with 429 (``TooManyRequests``), after a
short round trip of its own. ``peak`` is the most requests an airline ever had at once, refused
ones included — what a limit must keep at ``CAPACITY`` or below.

``script("TP", latency=4)`` makes TP slow, ``script("IB", flies=False)`` makes IB answer that it
does not fly the route (``NoSuchRoute``: asking again cannot help). A quote repeated with the
same request id (a step run again after a crash) is marked ``quote (repeated)`` and answers what
the first one did.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

from .ledger import Ledger

ledger = Ledger("quotes")
AIRLINES = ("KL", "TP", "LH", "BA", "IB")
#: Requests each airline's API accepts at once; one more is refused with 429.
CAPACITY = 2
DEFAULT_LATENCY = 0.3
#: How long a refusal (429) takes: the airline's gateway answers it.
REFUSAL_LATENCY = 0.05
BASE_FARES = {"KL": 240, "TP": 190, "LH": 265, "BA": 230, "IB": 205}


class TooManyRequests(RuntimeError):
    """429: the airline has ``CAPACITY`` requests in hand already (worth asking again later)."""


class NoSuchRoute(RuntimeError):
    """The airline does not fly the route (asking again gives the same answer)."""


@dataclass
class Behaviour:
    latency: float = DEFAULT_LATENCY
    flies: bool = True
    after: str | None = None  # the airline whose answer this one's latency counts from


_behaviour: dict[str, Behaviour] = {}
_answers: dict[str, dict[str, object]] = {}  # request id → the quote answered
_in_flight: dict[str, int] = {}
_peak: dict[str, int] = {}
_answered: set[str] = set()  # airlines that have answered since they were scripted
_lock = threading.Lock()
#: The longest an airline waits for the one it answers ``after``.
LONGEST_WAIT = 30.0


def script(airline: str, *, latency: float = DEFAULT_LATENCY, flies: bool = True,
           after: str | None = None) -> None:
    """How ``airline`` answers from now on: after ``latency`` seconds, a fare or NoSuchRoute —
    seconds counted from the next answer of airline ``after``, if given: an order of answers
    that no busy machine can swap."""
    if airline not in AIRLINES or after not in (None, *AIRLINES):
        raise ValueError(f"{airline!r}, {after!r}: airlines are {', '.join(AIRLINES)}")
    with _lock:
        _behaviour[airline] = Behaviour(latency, flies, after)
        _answered.discard(airline)


async def quote(airline: str, route: str, request_id: str) -> dict[str, object]:
    """The airline's fare for ``route``, after its latency."""
    with _lock:
        if request_id in _answers:
            ledger.record("quote (repeated)", airline=airline, route=route,
                          request_id=request_id)
            return _answers[request_id]
        _in_flight[airline] = _in_flight.get(airline, 0) + 1
        _peak[airline] = max(_peak.get(airline, 0), _in_flight[airline])
        refused = _in_flight[airline] > CAPACITY
    behaviour = _behaviour.get(airline, Behaviour())
    try:
        waited = 0.0
        while not refused and behaviour.after and behaviour.after not in _answered \
                and waited < LONGEST_WAIT:
            await asyncio.sleep(0.01)
            waited += 0.01
        await asyncio.sleep(REFUSAL_LATENCY if refused else behaviour.latency)
    finally:
        with _lock:
            _in_flight[airline] = max(0, _in_flight.get(airline, 0) - 1)
    if refused:
        ledger.record("429", airline=airline, route=route, request_id=request_id)
        raise TooManyRequests(f"429 Too Many Requests: {airline} takes {CAPACITY} at once")
    if not behaviour.flies:
        ledger.record("no such route", airline=airline, route=route, request_id=request_id)
        raise NoSuchRoute(f"{airline} does not fly {route}")
    answer: dict[str, object] = {"airline": airline, "fare": BASE_FARES[airline]}
    with _lock:
        _answers[request_id] = answer
        _answered.add(airline)
    ledger.record("quote", airline=airline, route=route, fare=answer["fare"],
                  request_id=request_id)
    return answer


def peak(airline: str) -> int:
    """The most requests ``airline`` ever had at once since the last reset (refused included)."""
    with _lock:
        return _peak.get(airline, 0)


def peaks() -> dict[str, int]:
    with _lock:
        return {airline: _peak.get(airline, 0) for airline in AIRLINES}


def reset() -> None:
    with _lock:
        ledger.clear()
        _behaviour.clear()
        _answers.clear()
        _answered.clear()
        # Requests still in flight stay counted: they are still at the airline.
        _peak.clear()
        _peak.update(_in_flight)
