"""The testing plugin on a user's project with planted bugs: each one caught, with a clear
message (the table in the README is this test's)."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

PLANTED = '''
import asyncio
import random
import time
import uuid

import pytest
import restate
from pydantic import BaseModel
from restate import Context, ObjectContext, RunOptions, TerminalError

EMAILS: list[str] = []
CHARGES: dict[str, str] = {}
orders = restate.Service("Orders")
pricing = restate.Service("Pricing")
storefront = restate.Service("Storefront")
cart = restate.VirtualObject("Cart")


class Item(BaseModel):
    sku: str
    quantity: int


@orders.handler()
async def email_outside_a_step(ctx: Context, order: str) -> str:
    EMAILS.append(order)  # BUG: an effect outside ctx.run: a replay sends it again
    return await ctx.run_typed("confirm", lambda: "confirmed", RunOptions())


async def charge(order: str) -> str:
    CHARGES.setdefault(str(uuid.uuid4()), order)  # BUG: a new key on every attempt
    await asyncio.sleep(0.3)  # the payment API answers slowly: a crash can land meanwhile
    return "charged"


@orders.handler()
async def charge_with_a_new_key(ctx: Context, order: str) -> str:
    await ctx.run_typed("charge", charge, RunOptions(), order)  # not idempotent
    return await ctx.run_typed("receipt", lambda: "receipt", RunOptions())


@orders.handler()
async def id_outside_the_journal(ctx: Context, order: str) -> str:
    return await ctx.run_typed(f"reserve {uuid.uuid4()}", lambda: "ok", RunOptions())  # BUG


@orders.handler()
async def clock_outside_the_journal(ctx: Context, order: str) -> str:
    if time.time_ns() // 1000 % 2:  # BUG: a branch on the clock, outside ctx.run
        return await ctx.run_typed("odd", lambda: "ok", RunOptions())
    return await ctx.run_typed("even", lambda: "ok", RunOptions())


@orders.handler()
async def coin_outside_the_journal(ctx: Context, order: str) -> str:
    return await ctx.run_typed(random.choice(["DHL", "UPS"]), lambda: "ok", RunOptions())  # BUG


@orders.handler()
async def never_returns(ctx: Context, order: str) -> str:
    await asyncio.sleep(3600)  # BUG: waits for nothing Restate knows of
    return "never"


@pricing.handler()
async def price(ctx: Context, sku: str) -> int:
    if sku != "lamp":
        raise TerminalError(f"unknown sku: {sku}", 404)
    return 40


@storefront.handler()
async def quote(ctx: Context, sku: str) -> int:
    return await ctx.generic_call("Pricng", "price", f'"{sku}"'.encode())  # BUG: a typo


@cart.handler()
async def add(ctx: ObjectContext, item: Item) -> int:
    count = (await ctx.get("count", type_hint=int) or 0) + item.quantity
    ctx.set("count", count)
    return count


def test_effect_outside_a_step(restate_lab, restate_crash_test):
    restate_lab.serve(orders)
    restate_crash_test(lambda run: restate_lab.ingress.send("Orders", "email_outside_a_step", run),
                       lambda run, _: None if EMAILS.count(run) == 1 else
                       pytest.fail(f"{EMAILS.count(run)} e-mails for {run}"),
                       modes=("service host crash",))


def test_non_idempotent_step(restate_lab, restate_crash_test):
    restate_lab.serve(orders)

    def check(run, _):
        charged = list(CHARGES.values()).count(run)
        assert charged == 1, f"{run} charged {charged} times"

    restate_crash_test(lambda run: restate_lab.ingress.send("Orders", "charge_with_a_new_key", run),
                       check, modes=("service host crash",))


@pytest.mark.parametrize("handler", ["id_outside_the_journal", "clock_outside_the_journal",
                                     "coin_outside_the_journal"])
def test_outside_the_journal(restate_lab, handler):
    restate_lab.serve(orders)
    for n in range(10):  # a coin comes out the same on every replay of 10 calls: 1 in 2**20
        restate_lab.ingress.call("Orders", handler, f"order-{n}")


def test_never_returns(restate_lab):
    restate_lab.serve(orders)
    restate_lab.ingress.call("Orders", "never_returns", "order-1")


def test_typo(restate_lab):
    restate_lab.serve(storefront, pricing)
    assert restate_lab.ingress.call("Storefront", "quote", "lamp") == 40


def test_missing_service(restate_lab):
    restate_lab.serve(storefront)
    restate_lab.ingress.call("Pricing", "price", "lamp")


def test_terminal_error(restate_lab, restate_client):
    restate_lab.serve(pricing)
    assert restate_client.service_call(price, "lampp") == 40


def test_pydantic_input(restate_lab):
    restate_lab.serve(cart)
    assert restate_lab.ingress.call("Cart", "add", {"sku": "lamp", "quantity": "two"},
                                    key="ada") == 2
'''


#: Each planted bug, and what its failure must say.
CAUGHT = {
    "test_effect_outside_a_step": ("2 e-mails for",),  # every replay sends it again
    "test_non_idempotent_step": ("BROKEN", "charged 2 times"),
    "test_outside_the_journal[id_outside_the_journal]": ("journal mismatch",),
    "test_outside_the_journal[clock_outside_the_journal]": ("journal mismatch",),
    "test_outside_the_journal[coin_outside_the_journal]": ("journal mismatch",),
    "test_never_returns": ("No answer from /Orders/never_returns within 3 s",),
    "test_typo": ("Pricng",),
    "test_missing_service": ("HTTP 404", "Pricing"),
    "test_terminal_error": ("HTTP 404: unknown sku: lampp",),
    "test_pydantic_input": ("quantity",),
}


def test_every_planted_bug_is_caught_with_a_clear_message(pytester: pytest.Pytester) -> None:
    """A user's project (a service with effects, a workflow of calls, an object with a
    Pydantic input) with one planted bug per test, under --restate-always-replay: each test
    fails, and its failure says what is wrong."""
    pytester.makepyfile(test_planted=PLANTED)
    run = pytester.runpytest_subprocess("-q", "-rf", "--restate-always-replay",
                                        "--restate-call-timeout", "3", timeout=300)
    run.assert_outcomes(failed=len(CAUGHT))
    summary = {line.split(" - ", 1)[0].removeprefix("FAILED test_planted.py::"):
               line.split(" - ", 1)[-1] for line in run.stdout.lines if line.startswith("FAILED")}
    output = run.stdout.str()
    for test, says in CAUGHT.items():
        assert test in summary, (test, summary)
        section = output.split(f"_ {test} _", 1)[-1].split("\n___", 1)[0]
        assert all(words.lower() in section.lower() for words in says), (test, section[-1500:])
