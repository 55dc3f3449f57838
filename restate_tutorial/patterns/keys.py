"""Keys for calls to downstream systems: made once per run, kept in the journal.

A downstream system recognises a repeated call by a key the caller sends along (an idempotency
key, a request id). The key must be the same on every retry and replay of one run — and
different in every other run.

``ctx.uuid()`` is only half of that: it is derived from the invocation id, and Restate derives a
workflow's invocation id from its name and key (an ingress call with an ``idempotency-key``
header, likewise). So a second run of trip id ``dup1`` (after ``restate invocations purge``)
would get the first run's key back, and the payment API would take the new charge for a repeat
of the old one. A random uuid4 made inside a journaled step has neither problem.
"""

from __future__ import annotations

import uuid

from restate import Context, RunOptions


def _random_key() -> str:
    return str(uuid.uuid4())


async def unique_key(ctx: Context, name: str) -> str:
    """A random key made in the journaled step ``name``: retries and replays read it back from
    the journal, and every new run gets a new one."""
    return await ctx.run_typed(name, _random_key, RunOptions())
