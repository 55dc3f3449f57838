"""Changing code under running invocations: one small service, in several versions.

    CheckIn/Run {"trip_id": "…"}
      ├─ run "seat"             assign a seat (simulated airline), with a key from the journal
      ├─ awakeable + run "call back when boarding"    the airline will resolve it
      ├─ await the awakeable    the invocation waits: minutes, days — or a deploy — pass
      └─ run "boarding pass"    send it; its text says which version of the code sent it

The versions, each a fresh ``restate.Service("CheckIn")`` (notebook 05 serves them):

- ``"v1"``: the code the invocations start on.
- ``"v2"``: a compatible fix — the boarding pass shows the gate; the same steps in the same order.
- ``"reordered"``: an incompatible change — the seat is assigned only once boarding opens. An
  invocation that journaled its steps under v1 cannot be replayed on it (journal mismatch).
- ``"buggy"``: the boarding-pass step raises a bug (every attempt fails until a fix is deployed).

Every version retries a failed attempt after 0.5 s, then 1 s, 2 s, … and pauses the invocation
after 10 attempts (``restate invocations resume`` continues it) — instead of Restate's default
of 70 attempts: a stuck invocation waits for an operator after about four minutes.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import restate
from restate import Context, RunOptions

from ..simulated import airline
from .keys import unique_key
from .payloads import JSON_INPUT, fields

VERSIONS = ("v1", "v2", "reordered", "buggy")
RETRY_POLICY = restate.InvocationRetryPolicy(initial_interval=timedelta(seconds=0.5),
                                             max_attempts=10, on_max_attempts="pause")


def check_in_service(version: str) -> restate.Service:
    """``CheckIn/Run`` as it is in ``version`` (one of VERSIONS)."""
    if version not in VERSIONS:
        raise ValueError(f"unknown version {version!r}: pick one of {', '.join(VERSIONS)}")
    service = restate.Service("CheckIn", invocation_retry_policy=RETRY_POLICY)

    async def assign_seat(ctx: Context, trip_id: str) -> str:
        request_id = await unique_key(ctx, "seat request id")
        return await ctx.run_typed("seat", airline.assign_seat, RunOptions(), trip_id,
                                   request_id)

    async def wait_for_boarding(ctx: Context, trip_id: str) -> None:
        callback_id, boarding = ctx.awakeable(type_hint=str)
        await ctx.run_typed("call back when boarding", airline.call_back_when_boarding,
                            RunOptions(), trip_id, callback_id)
        await boarding  # suspended until the airline resolves the awakeable

    def boarding_pass(trip_id: str, seat: str) -> str:
        if version == "buggy":
            raise KeyError("gate")  # the bug: looks up a gate that this version never set
        gate = ", gate B7" if version == "v2" else ""
        message = f"Boarding pass for {trip_id}: seat {seat}{gate} ({version})"
        airline.send_boarding_pass(trip_id, message)
        return message

    @service.handler(name="Run", input_serde=JSON_INPUT)
    async def run(ctx: Context, request: Any) -> str:
        trip_id = fields(request, "check-in", trip_id=str)["trip_id"]
        if version == "reordered":  # the seat only once boarding opens: steps in a new order
            await wait_for_boarding(ctx, trip_id)
            seat = await assign_seat(ctx, trip_id)
        else:
            seat = await assign_seat(ctx, trip_id)
            await wait_for_boarding(ctx, trip_id)
        return await ctx.run_typed("boarding pass", boarding_pass, RunOptions(), trip_id, seat)

    return service
