"""A simulated fare API for notebook 08 — NOT part of Restate: the price of a flight, scripted.

``script("KL1234", [520, 480, 390])`` makes the next checks of that flight answer 520, then 480,
then 390 (the last one from then on); an unscripted flight costs ``DEFAULT_FARE``. Every check
is in the ledger with its request id: a check repeated with the same id (a step run again
after a crash) is marked ``check (repeated)`` and answers what the first one did;
``failures.lose_answer_next("KL1234")`` makes the next check of that flight take effect and fail
all the same (a lost answer: the step is retried).
"""

from __future__ import annotations

import threading

from .ledger import Ledger, ScriptedFailures

ledger = Ledger("fares")
failures = ScriptedFailures()
DEFAULT_FARE = 500
_scripts: dict[str, list[int]] = {}
_answers: dict[str, int] = {}  # request id → fare answered
_lock = threading.Lock()


def script(flight: str, fares: list[int]) -> None:
    """What the next checks of ``flight`` answer, in order; the last one stays."""
    if not fares:
        raise ValueError("script at least one fare")
    _scripts[flight] = list(fares)


def check(flight: str, request_id: str) -> int:
    """The fare of ``flight`` now."""
    with _lock:
        if request_id in _answers:
            ledger.record("check (repeated)", flight=flight, request_id=request_id)
            return _answers[request_id]
        fares = _scripts.get(flight, [DEFAULT_FARE])
        fare = fares.pop(0) if len(fares) > 1 else fares[0]
        _answers[request_id] = fare
        ledger.record("check", flight=flight, fare=fare, request_id=request_id)
    failures.check_answer(flight)
    return fare


def reset() -> None:
    ledger.clear()
    failures.clear()
    _scripts.clear()
    _answers.clear()
