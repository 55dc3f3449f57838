"""Durable execution in one handler: a journaled step, a durable sleep, another step.

    Greeter/greet {"name": "Ada", "delay_seconds": 5}
      ├─ run "draft greeting"   journaled: its result is recorded; a replay reads it back
      ├─ sleep                  a durable timer: Restate keeps it, crashes do not reset it
      └─ run "send greeting"    journaled
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import restate
from restate import Context, ObjectContext, RunOptions, TerminalError, WorkflowContext

from ..simulated import mailer
from .keys import unique_key
from .payloads import JSON_INPUT, fields

greeter = restate.Service("Greeter")
#: The longest wait a greeting may ask for (a day).
MAX_DELAY_SECONDS = 86_400


@greeter.handler(input_serde=JSON_INPUT)
async def greet(ctx: Context, request: Any) -> dict[str, str]:
    name = fields(request, "greeting", name=str)["name"]
    delay = request.get("delay_seconds", 5)
    if not isinstance(delay, (int, float)) or isinstance(delay, bool) \
            or not 0 <= delay <= MAX_DELAY_SECONDS:
        raise TerminalError("malformed greeting: delay_seconds must be a number from 0 to "
                            f"{MAX_DELAY_SECONDS:,}", 400)

    # Journaled step: draft the greeting; after a crash the id comes from the journal.
    greeting_id = await ctx.run_typed("draft greeting", mailer.draft, RunOptions(), name)
    # Durable sleep: the timer lives in Restate, not in this process.
    await ctx.sleep(timedelta(seconds=delay), name="wait before sending")
    # Journaled step: send the drafted greeting.
    await ctx.run_typed("send greeting", mailer.send, RunOptions(), greeting_id)
    return {"greeting_id": greeting_id, "message": f"Hello {name}!"}


visits = restate.VirtualObject("Visits")


@visits.handler()
async def visit(ctx: ObjectContext) -> int:
    """Count visits per key: state that Restate stores next to the journal."""
    count = (await ctx.get("count", type_hint=int) or 0) + 1
    ctx.set("count", count)
    return count


key_demo = restate.Workflow("KeyDemo")


@key_demo.main(name="Run")
async def show_keys(ctx: WorkflowContext) -> dict[str, str]:
    """Two ways to make a key: run the same workflow id twice (purging in between) to compare."""
    return {"ctx.uuid()": str(ctx.uuid()),  # derived from the invocation id, i.e. the workflow id
            "unique_key": await unique_key(ctx, "key")}  # a random uuid4, journaled
