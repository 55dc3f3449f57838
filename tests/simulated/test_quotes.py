"""The simulated airlines answer in a scripted order, whatever the machine's load."""

from __future__ import annotations

import asyncio
import time

import pytest

from restate_tutorial.simulated import quotes


def test_an_airline_scripted_after_another_answers_after_it_however_late_it_was_asked() -> None:
    quotes.reset()
    answered: list[str] = []

    async def ask(airline: str, delay: float) -> None:
        await asyncio.sleep(delay)  # asked late, as a call started on a busy machine
        await quotes.quote(airline, "AMS-LIS", f"order-{airline}-{time.time()}")
        answered.append(airline)

    async def search() -> None:
        await asyncio.gather(ask("KL", 0.0), ask("TP", 0.0), ask("IB", 0.3))

    try:
        quotes.script("KL", latency=0.05)
        quotes.script("IB", latency=0.05, after="KL")
        quotes.script("TP", latency=0.05, after="IB")  # asked first, yet answers last
        asyncio.run(search())
        assert answered == ["KL", "IB", "TP"]
    finally:
        quotes.reset()


def test_an_unknown_airline_to_wait_for_is_refused() -> None:
    with pytest.raises(ValueError, match="XX"):
        quotes.script("KL", after="XX")
