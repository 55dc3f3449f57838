"""Time: a call sent with a delay, and a recurring job made of delayed calls to itself.

    TripReminders/<trip>/Book     the original example's booking + "remind_in_seconds"
      ├─ BookingWorkflow/Run (same trip id)            the saga of notebook 01
      ├─ send Remind, delayed by remind_in_seconds      Restate keeps the timer, not our process
      └─ state: "status" booked, "reminder" (its invocation id and when it is due)
    TripReminders/<trip>/Remind   the check-in reminder: one message, however often it runs
    TripReminders/<trip>/Cancel   cancels the pending reminder (it never runs), then undoes the
                                  trip: flight and car cancelled, payment refunded
    TripReminders/<trip>/Status   (shared) {"status", "reminder"}

    PriceWatch/<flight>/Start     {"every_seconds", "below", "notify"}
      ├─ cancel the pending tick, if any; a new "generation" (an older tick does nothing)
      └─ send Tick, delayed by every_seconds → its invocation id in state "pending"
    PriceWatch/<flight>/Tick      checks the fare (a journaled step); below the limit → one alert,
                                  and the watch ends; else the next Tick, delayed
    PriceWatch/<flight>/Stop      cancels the pending tick; no tick runs after Stop answered
    PriceWatch/<flight>/Status    (shared) {"status", "checks", "next_tick", …}

    CronJob/<job>/Start           {"every_seconds"}: runs at every multiple of the period
                                  (every_seconds 60: every minute at :00), one run per slot
    CronJob/<job>/Tick            runs the job for its slot, then schedules the next slot
    CronJob/<job>/Stop            cancels the pending run
    Catch-up policy: after downtime, the run that was due runs once, late; the slots missed
    meanwhile are skipped (no burst), and the next run is at the next slot after now.

At most one tick is pending per flight: Start, Tick and Stop are exclusive handlers of one
virtual object (Restate runs them one at a time per flight), each cancels or replaces the one
pending tick it knows of, and a tick of an older generation does nothing if it runs anyway.
The chain lives in Restate: a crash of restate-server or of the service host loses no tick and
doubles none.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import restate
from restate import ObjectContext, ObjectSharedContext, RunOptions, TerminalError

from ..simulated import fares, mailer
from .payloads import JSON_INPUT, clip, fields, seconds
from .sagas import car_service, flight_service, parse_booking, refund
from .sagas import run as book

#: The longest delay a reminder or a watch may ask for (a year).
MAX_DELAY_SECONDS = 366 * 86_400

trip_reminders = restate.VirtualObject("TripReminders")


@trip_reminders.handler(name="Book", input_serde=JSON_INPUT)
async def book_with_reminder(ctx: ObjectContext, request: Any) -> dict[str, Any]:
    parse_booking(request)  # a malformed booking is refused before anything happens
    delay = seconds(request.get("remind_in_seconds"), "booking", "remind_in_seconds",
                    MAX_DELAY_SECONDS)
    if (status := await ctx.get("status", type_hint=str)) is not None:
        raise TerminalError(f"trip {clip(ctx.key())} was booked already (it is {status})", 409)
    booking = {k: v for k, v in request.items() if k != "remind_in_seconds"}
    trip = await ctx.workflow_call(book, key=ctx.key(), arg=booking)
    ctx.set("trip", trip)
    ctx.set("status", "booked")

    # The reminder: a call to ourselves that Restate delivers after the delay (durably).
    now = await ctx.time()
    handle = ctx.object_send(remind, key=ctx.key(), arg=None, send_delay=timedelta(seconds=delay))
    reminder = {"invocation_id": await handle.invocation_id(), "due_at": now + delay}
    ctx.set("reminder", reminder)
    return {**trip, "reminder": reminder}


@trip_reminders.handler(name="Remind", ingress_private=True)  # only Book sends it
async def remind(ctx: ObjectContext) -> None:
    if await ctx.get("status", type_hint=str) != "booked":
        return  # cancelled meanwhile (its reminder was cancelled too: belt and braces)
    # One message per trip, however often this step runs.
    await ctx.run_typed("send reminder", mailer.notify, RunOptions(), f"traveller-{ctx.key()}",
                        f"Check in for trip {ctx.key()}", "Check-in is open.",
                        f"reminder-{ctx.key()}")
    ctx.set("status", "reminded")


@trip_reminders.handler(name="Cancel")
async def cancel_trip(ctx: ObjectContext) -> str:
    status = await ctx.get("status", type_hint=str)
    if status is None or status == "cancelled":
        raise TerminalError(f"trip {clip(ctx.key())} is not booked", 404)
    reminder = await ctx.get("reminder", type_hint=dict)
    if status == "booked" and reminder:
        ctx.cancel_invocation(reminder["invocation_id"])  # it has not run: now it never will
    trip = await ctx.get("trip", type_hint=dict) or {}
    # Undo the trip: each a call or a journaled step, each safe to repeat.
    await ctx.service_call(flight_service.cancel, trip["flight_reservation"])
    await ctx.service_call(car_service.cancel, trip["car_reservation"])
    await ctx.run_typed("refund", refund, RunOptions(), trip["payment"])
    ctx.set("status", "cancelled")
    return "cancelled"


@trip_reminders.handler(name="Status", kind="shared")
async def trip_status(ctx: ObjectSharedContext) -> dict[str, Any]:
    return {"status": await ctx.get("status", type_hint=str) or "unknown",
            "reminder": await ctx.get("reminder", type_hint=dict)}


price_watch = restate.VirtualObject("PriceWatch")


@price_watch.handler(name="Start", input_serde=JSON_INPUT)
async def start(ctx: ObjectContext, request: Any) -> dict[str, Any]:
    watch = fields(request, "watch", below=(int, float), notify=str)
    watch["every_seconds"] = seconds(request.get("every_seconds"), "watch", "every_seconds",
                                     MAX_DELAY_SECONDS)
    await _cancel_pending(ctx)  # a second Start replaces the first chain: still one
    generation = (await ctx.get("generation", type_hint=int) or 0) + 1
    ctx.set("generation", generation)
    ctx.set("watch", watch)
    ctx.set("status", "watching")
    ctx.set("checks", 0)
    await _send_later(ctx, tick, generation, watch["every_seconds"])  # the first tick
    return await _status(ctx)


@price_watch.handler(name="Tick", input_serde=JSON_INPUT,
                     ingress_private=True)  # only the chain calls it
async def tick(ctx: ObjectContext, generation: Any) -> None:
    _generation(generation, "tick")  # whoever calls it: a 400, never a retry
    if generation != await ctx.get("generation", type_hint=int):
        return  # a tick of a chain that was stopped or replaced (or never started)
    ctx.clear("pending")
    watch = await ctx.get("watch", type_hint=dict) or {}
    checks = (await ctx.get("checks", type_hint=int) or 0) + 1
    ctx.set("checks", checks)
    # The fare now (journaled: a replay reuses it).
    fare = await ctx.run_typed("check fare", fares.check, RunOptions(), ctx.key(),
                               f"{ctx.key()}-{generation}-{checks}")
    if fare < watch["below"]:
        # One alert per watch: a journaled step with a message id of its own.
        await ctx.run_typed("alert", mailer.notify, RunOptions(), watch["notify"],
                            f"{ctx.key()} costs {fare:g}",
                            f"Below your limit of {watch['below']:g}.",
                            f"price-{ctx.key()}-{generation}")
        ctx.set("status", "alerted")
        return
    await _send_later(ctx, tick, generation, watch["every_seconds"])  # the next tick


@price_watch.handler(name="Stop")
async def stop(ctx: ObjectContext) -> dict[str, Any]:
    await _cancel_pending(ctx)
    ctx.set("generation", (await ctx.get("generation", type_hint=int) or 0) + 1)
    if await ctx.get("status", type_hint=str) == "watching":
        ctx.set("status", "stopped")
    return await _status(ctx)


@price_watch.handler(name="Status", kind="shared")
async def watch_status(ctx: ObjectSharedContext) -> dict[str, Any]:
    return await _status(ctx)


def _generation(value: Any, what: str) -> None:
    """A chain's generation is a whole number from 1; else TerminalError(400)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise TerminalError(f"malformed {what}: the generation must be a whole number from 1",
                            400)


async def _send_later(ctx: ObjectContext, handler: Any, arg: Any, delay: float) -> None:
    """Send ``handler`` of this object a call, delayed; keep its id (Stop cancels it)."""
    handle = ctx.object_send(handler, key=ctx.key(), arg=arg, send_delay=timedelta(seconds=delay))
    ctx.set("pending", await handle.invocation_id())


async def _cancel_pending(ctx: ObjectContext) -> None:
    pending = await ctx.get("pending", type_hint=str)
    if pending is not None:
        ctx.cancel_invocation(pending)
        ctx.clear("pending")


async def _status(ctx: ObjectContext | ObjectSharedContext) -> dict[str, Any]:
    return {"status": await ctx.get("status", type_hint=str) or "idle",
            "watch": await ctx.get("watch", type_hint=dict),
            "checks": await ctx.get("checks", type_hint=int) or 0,
            "pending_tick": await ctx.get("pending", type_hint=str)}


cron_job = restate.VirtualObject("CronJob")


@cron_job.handler(name="Start", input_serde=JSON_INPUT)
async def start_cron(ctx: ObjectContext, request: Any) -> dict[str, Any]:
    every = seconds(fields(request, "cron job", every_seconds=(int, float))["every_seconds"],
                    "cron job", "every_seconds", MAX_DELAY_SECONDS)
    await _cancel_pending(ctx)  # a second Start replaces the schedule
    generation = (await ctx.get("generation", type_hint=int) or 0) + 1
    ctx.set("generation", generation)
    ctx.set("every", every)
    await _schedule_slot(ctx, generation, every)
    return {"job": ctx.key(), "every_seconds": every, "pending": await ctx.get("pending")}


@cron_job.handler(name="Tick", input_serde=JSON_INPUT,
                  ingress_private=True)  # only the schedule calls it
async def cron_tick(ctx: ObjectContext, slot: Any) -> None:
    slot = fields(slot, "slot", generation=int, at=(int, float))
    _generation(slot["generation"], "slot")
    if slot["generation"] != await ctx.get("generation", type_hint=int):
        return  # stopped or replaced (or never started)
    ctx.clear("pending")
    # The job, once per slot: a journaled step, and a message id made of the slot.
    await ctx.run_typed("job", mailer.notify, RunOptions(), f"ops-{ctx.key()}",
                        f"job {ctx.key()}", f"slot {slot['at']:.0f}", f"{ctx.key()}-{slot['at']}")
    # The next slot after *now*: the slots missed while we were down are skipped.
    await _schedule_slot(ctx, slot["generation"], await ctx.get("every", type_hint=float) or 60)


@cron_job.handler(name="Stop")
async def stop_cron(ctx: ObjectContext) -> None:
    await _cancel_pending(ctx)
    ctx.set("generation", (await ctx.get("generation", type_hint=int) or 0) + 1)


def next_slot(now: float, every: float) -> float:
    """The first multiple of ``every`` seconds (since the epoch) after ``now``."""
    return (math.floor(now / every) + 1) * every


async def _schedule_slot(ctx: ObjectContext, generation: int, every: float) -> None:
    now = await ctx.time()  # journaled: a replay computes the same slot
    at = next_slot(now, every)
    await _send_later(ctx, cron_tick, {"generation": generation, "at": at}, at - now)
