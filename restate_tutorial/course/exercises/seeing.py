"""Checks for the exercises of notebook 12 (seeing inside)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import restate
from restate import Context, InvocationRetryPolicy

from ... import views
from ...lab import Lab, LabError
from ...scenarios import GOOD_CARD
from ...simulated import mailer, travel
from .checking import (
    HOST,
    SERVER,
    NotYet,
    check,
    crash,
    end_unfinished,
    eventually,
    expect,
    settle,
)

#: While the check waits for the warehouse to be told, each message your handler sends Restate
#: is held this long: the crash lands after the step's effect, before Restate has its result.
HOLD_SECONDS = 1.0


@check("Exercise 12.1 · a span once, whatever the replays")
def check_span_once(lab: Lab) -> None:
    expect(lab.traces is not None, "a lab that collects traces",
           "this lab was started without traces=True", "start it as the notebook's first cell "
           "does: Lab.shared([...], traces=True)")
    assert lab.traces is not None
    order_id = f"o-{uuid.uuid4().hex[:8]}"

    def told() -> bool:
        return mailer.ledger.count("notify", message_id=f"ship-{order_id}") > 0

    with lab.paced(HOLD_SECONDS):
        invocation = lab.ingress.send("Shipping", "Ship", {"order_id": order_id})
        if eventually(told, 10):
            crash(lab, HOST, "after the warehouse was told, before Restate had the step's result")
    settle(lab, invocation, "Shipping/Ship")
    trace = views.trace(lab.traces, invocation)
    spans = [row for row in trace if row["name"] == "notify warehouse"
             and row["from"] == "service host"]  # a span, not the step of that name
    expect(bool(spans), "a span named \"notify warehouse\" in the order's trace",
           "the trace's spans are " + ", ".join(sorted({str(r["name"]) for r in trace
                                                         if "· step" not in str(r["span"])})),
           "start it with restate_tutorial.tracing.tracer (restate.ext.tracing's), around the "
           "step: `with tracer.start_as_current_span(\"notify warehouse\", attributes=…):`")
    expect(len(spans) == 1, "one \"notify warehouse\" span, however often the handler ran",
           f"{len(spans)} spans: a crash made Restate replay the handler, and each replay made "
           "the span again", "a plain OpenTelemetry tracer makes a span on every replay; "
           "restate_tutorial.tracing.tracer makes none while the handler replays its journal "
           "— and start it in the handler, not inside the step's function (which runs again "
           "when its result was lost)")
    [span] = spans
    expect(span["attributes"].get("order.id") == order_id,
           f"the span's attribute \"order.id\": {order_id!r}",
           f"its attributes are {span['attributes']}",
           "attributes={\"order.id\": request[\"order_id\"]}")


#: 12.2: another service, paused after two failed attempts (the check serves it).
inventory = restate.Service("Inventory", invocation_retry_policy=InvocationRetryPolicy(
    initial_interval=timedelta(milliseconds=100), max_attempts=2, on_max_attempts="pause"))


@inventory.handler(name="Reserve")
async def reserve(ctx: Context, request: dict) -> None:
    raise RuntimeError("scripted: the inventory system is down")


@check("Exercise 12.2 · an alert for stuck payments")
def check_stuck_query(lab: Lab, query: str) -> None:
    lab.serve(inventory)
    # Payments paused before the check (your experiments, the notebook's): yours to find too.
    earlier = {row["id"] for row in lab.admin.sql(
        "SELECT id FROM sys_invocation WHERE target = 'Checkout/Pay' AND status = 'paused'")}
    run = uuid.uuid4().hex[:8]
    travel.payments.failures.fail_next(f"charge order-stuck-{run}", 1_000_000)
    travel.payments.failures.fail_next(f"charge order-recovered-{run}", 2)
    ids: dict[str, str] = {}
    try:
        for name in ("stuck", "recovered"):
            ids[name] = lab.ingress.send("Checkout", "Pay", {
                "order_id": f"{name}-{run}", "card_number": GOOD_CARD, "amount": 10})
        ids["later"] = lab.ingress.send("Checkout", "Pay", {
            "order_id": f"later-{run}", "card_number": GOOD_CARD, "amount": 10},
            delay="10m")  # scheduled: not started yet, nothing wrong with it
        ids["inventory"] = lab.ingress.send("Inventory", "Reserve", {})
        settle(lab, ids["recovered"], "Checkout/Pay")
        paused = " OR ".join(f"id = '{ids[n]}'" for n in ("stuck", "inventory"))
        eventually(lambda: len(lab.admin.sql(f"SELECT id FROM sys_invocation WHERE ({paused})"
                                             " AND status = 'paused'")) == 2, 15)
        crash(lab, SERVER, "before the alert runs: what Restate kept in memory is gone")
        eventually(lambda: lab.admin.sql(f"SELECT status FROM sys_invocation WHERE ({paused})"
                                         " AND status = 'paused'"), 10)  # its tables back
        try:
            rows = lab.admin.sql(query)
        except LabError as wrong:
            raise NotYet("a query Restate runs", f"Restate refused it: {wrong}",
                         "try it in a cell first: lab.admin.sql(STUCK_PAYMENTS)") from None
        names = {invocation: name for name, invocation in ids.items()}
        found = sorted(names[str(row.get("id"))] for row in rows if row.get("id") in names)
        others = sum(row.get("id") not in names and row.get("id") not in earlier
                     for row in rows)
        expect(found == ["stuck"] and not others,
               f"the rows of exactly the paused Checkout/Pay invocation ({ids['stuck']})",
               f"after the restart the query found {found or 'none of them'}"
               + (f" and {others} other row(s)" if others else "") + " (of: stuck — paused "
               "after five failures; recovered — failed twice, then done; later — scheduled "
               "in 10 minutes; inventory — another service, paused too)",
               "retry_count and last_failure are the invoker's memory: a restart clears them, "
               "a pause leaves last_failure empty — the status 'paused' is what Restate keeps; "
               "and keep only target 'Checkout/Pay' (a column `id` in the answer)")
    finally:
        travel.payments.failures.clear()
        if ids:  # paused, scheduled, failing: none of them left behind
            end_unfinished(lab, " OR ".join(f"id = '{i}'" for i in ids.values()))
