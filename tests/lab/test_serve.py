"""lab.serve: a learner's own service (or a new version of it) served by the running lab."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from datetime import timedelta

import psutil
import pytest
import restate
from restate import Context, ObjectContext, WorkflowContext

from restate_tutorial.lab import Lab, LabError
from restate_tutorial.lab.service_host import ServiceHost


def greeter(name: str, greeting: str) -> restate.Service:
    service = restate.Service(name)

    @service.handler()
    async def greet(ctx: Context, request: dict) -> str:
        return f"{greeting}, {request['who']}!"

    return service


def test_serve_a_new_service_then_an_edited_version(lab: Lab) -> None:
    name = f"Hello{uuid.uuid4().hex[:6]}"
    first = lab.serve(greeter(name, "Hello"))
    assert lab.ingress.call(name, "greet", {"who": "Ada"}) == "Hello, Ada!"
    second = lab.serve(greeter(name, "Howdy"))  # the cell, edited and run again
    assert second != first
    assert lab.ingress.call(name, "greet", {"who": "Ada"}) == "Howdy, Ada!"


def test_an_invocation_in_flight_finishes_on_the_code_it_started_with(lab: Lab) -> None:
    name = f"Slow{uuid.uuid4().hex[:6]}"

    def version(label: str) -> restate.Service:
        service = restate.Service(name)

        @service.handler()
        async def work(ctx: Context, seconds: float) -> str:
            await ctx.sleep(timedelta(seconds=seconds))
            return label

        return service

    lab.serve(version("v1"))
    in_flight = lab.ingress.send(name, "work", 1.0)
    lab.admin.wait_for_entry(in_flight, "Command: Sleep")
    lab.serve(version("v2"))
    assert lab.ingress.call(name, "work", 0) == "v2"
    assert lab.ingress.attach(in_flight) == "v1"


def test_objects_and_workflows_can_be_served_too_from_any_thread(lab: Lab) -> None:
    suffix = uuid.uuid4().hex[:6]
    counter, once = restate.VirtualObject(f"Counter{suffix}"), restate.Workflow(f"Once{suffix}")

    @counter.handler()
    async def add(ctx: ObjectContext, n: int) -> int:
        total = (await ctx.get("total", type_hint=int) or 0) + n
        ctx.set("total", total)
        return total

    @once.main()
    async def run(ctx: WorkflowContext, request: dict) -> str:
        return request["word"].upper()

    served: list[str] = []
    thread = threading.Thread(target=lambda: served.append(lab.serve(counter, once)))
    thread.start()
    thread.join()
    assert served
    assert lab.ingress.call(counter.name, "add", 2, key="k") == 2
    assert lab.ingress.call(counter.name, "add", 3, key="k") == 5
    assert lab.ingress.call(once.name, "run", {"word": "hi"}, key="w") == "HI"


def test_a_name_clash_with_the_labs_own_services_is_one_sentence(lab: Lab) -> None:
    with pytest.raises(LabError) as clash:
        lab.serve(restate.Workflow("BookingWorkflow"))
    message = str(clash.value)
    assert message.startswith("BookingWorkflow is one of this lab's own services")
    assert "\n" not in message and 'restate.Workflow("MyBookingWorkflow")' in message


def test_serving_again_and_again_keeps_one_host(lab: Lab) -> None:
    """Each lab.serve is a new deployment at a path of its own on one service host: after the
    first, serving 40 more versions adds no thread, no listening port and (almost) no file."""
    name = f"Again{uuid.uuid4().hex[:6]}"
    lab.serve(greeter(name, "v0"))
    me = psutil.Process()

    def footprint() -> tuple[int, int, int]:
        listening = [c for c in me.net_connections("inet") if c.status == psutil.CONN_LISTEN]
        return threading.active_count(), len(listening), me.num_fds()

    threads, ports, files = footprint()
    for n in range(1, 41):
        lab.serve(greeter(name, f"v{n}"))
    assert lab.ingress.call(name, "greet", {"who": "Ada"}) == "v40, Ada!"
    now_threads, now_ports, now_files = footprint()
    assert (now_threads, now_ports) == (threads, ports)
    assert now_files <= files + 4, (files, now_files)  # a connection or two may come and go


def test_a_connection_cut_off_mid_stream_prints_nothing_other_loop_errors_do(
        caplog: pytest.LogCaptureFixture) -> None:
    """restate-server SIGKILLed mid-stream can make hypercorn's HTTP/2 code fail on a stream it
    already closed ("Unhandled exception in client_connected_cb … KeyError: 15", seen under a
    notebook 09 cell): Restate retries on a new connection, so nothing is reported. Any other
    error of the host's event loop still is (asyncio logs it: stderr, under a cell)."""
    host = ServiceHost(restate.app([]))
    loop = asyncio.new_event_loop()
    try:
        cut_off = KeyError(15)  # inside an ExceptionGroup on Python 3.11+
        host._on_loop_exception(loop, {"message": "Unhandled exception in client_connected_cb",
                                       "exception": cut_off})
        assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
        host._on_loop_exception(loop, {"message": "Task exception was never retrieved",
                                       "exception": RuntimeError("a real bug")})
        [reported] = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert "a real bug" in repr(reported.exc_info)
    finally:
        loop.close()
