"""The lab against the real restate-server and broker: start, call, crash, restart."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from restate_tutorial import views
from restate_tutorial.lab import IngressError, Lab, LabError, ServiceHost, wait_until
from restate_tutorial.patterns.basics import greeter
from restate_tutorial.simulated import mailer


def test_every_listener_is_on_loopback(lab: Lab) -> None:
    pids = [lab.server.pid, lab.broker._process.pid, psutil.Process().pid]
    listening = [c for pid in pids for c in psutil.Process(pid).net_connections("inet")
                 if c.status == psutil.CONN_LISTEN]
    ports = {c.laddr.port for c in listening}
    assert {lab.ports.ingress, lab.ports.admin, lab.ports.restate[0].node, lab.ports.services,
            lab.ports.kafka} <= ports
    assert {c.laddr.ip for c in listening} == {"127.0.0.1"}


def test_services_are_registered_and_callable(lab: Lab) -> None:
    assert {"Greeter", "Inbox"} <= set(lab.admin.services())
    answer = lab.ingress.call("Greeter", "greet", {"name": "Reg", "delay_seconds": 0})
    assert answer["message"] == "Hello Reg!"
    assert mailer.ledger.count("send", greeting_id=answer["greeting_id"]) == 1


def test_restate_error_surfaces_as_exception(lab: Lab) -> None:
    with pytest.raises(IngressError) as caught:
        lab.ingress.call("Greeter", "greet", {"nom": "no name"})
    assert caught.value.status == 400
    assert "malformed greeting" in caught.value.message
    with pytest.raises(IngressError, match="not found"):
        lab.ingress.call("NoSuchService", "run", {})


def test_starting_twice_is_harmless(lab: Lab) -> None:
    pid, port = lab.server.pid, lab.host.port
    assert lab.start() is lab
    assert lab.server.pid == pid and lab.host.port == port
    assert Lab.shared(lab.services) is lab
    lab.host.start()
    assert lab.ingress.call("Inbox", "messages", key="twice") == []


def test_state_survives_a_restate_server_crash(lab: Lab) -> None:
    key = f"crash-{uuid.uuid4()}"
    lab.ingress.call("Inbox", "add", {"n": 1}, key=key)
    old_pid = lab.server.pid
    lab.server.restart()  # SIGKILL, then start on the same data dir
    assert lab.server.pid != old_pid
    assert lab.ingress.call("Inbox", "messages", key=key) == [{"n": 1}]


def test_durable_sleep_and_steps_survive_a_server_crash(lab: Lab) -> None:
    """The timer is Restate's: after the crash the handler wakes at the original wake-up time
    (the one journaled before the crash; no new timer), and the draft is not made again."""
    name = f"crash-{uuid.uuid4()}"
    invocation = lab.ingress.send("Greeter", "greet", {"name": name, "delay_seconds": 1})
    lab.admin.wait_for_entry(invocation, "Command: Sleep")
    wake_up = views.sleeps(lab.admin, invocation)
    lab.server.restart()
    result = lab.ingress.attach(invocation)
    assert views.sleeps(lab.admin, invocation) == wake_up and len(wake_up) == 1
    assert mailer.ledger.count("draft", name=name) == 1
    [sent] = mailer.ledger.entries("send", greeting_id=result["greeting_id"])
    assert sent["at"] >= wake_up[0].timestamp()  # not before the original wake-up time


def test_service_host_crash_mid_handler_resumes_from_the_journal(lab: Lab) -> None:
    name = f"host-{uuid.uuid4()}"
    invocation = lab.ingress.send("Greeter", "greet", {"name": name, "delay_seconds": 1})
    lab.admin.wait_for_entry(invocation, "Command: Sleep")
    lab.host.stop()
    assert not lab.host.running
    lab.host.start()
    result = lab.ingress.attach(invocation)
    assert mailer.ledger.count("draft", name=name) == 1
    assert mailer.ledger.entries("draft", name=name)[0]["greeting_id"] == result["greeting_id"]


def test_awaited_calls_work_from_an_event_loop_in_the_calling_thread(lab: Lab) -> None:
    async def from_a_cell() -> list[dict]:
        async with httpx.AsyncClient(base_url=lab.server.ingress_url) as client:
            calls = [client.post("/Greeter/greet", json={"name": f"a{i}", "delay_seconds": 0})
                     for i in range(3)]
            return [r.json() for r in await asyncio.gather(*calls)]

    answers = asyncio.run(from_a_cell())
    assert [a["message"] for a in answers] == ["Hello a0!", "Hello a1!", "Hello a2!"]


def test_a_blocking_calling_thread_does_not_stall_handlers(lab: Lab) -> None:
    """A notebook cell that computes (holding the main thread, no I/O, no sleeping) while a
    handler runs: the handler still finishes."""
    name = f"blocked-{uuid.uuid4()}"
    lab.ingress.send("Greeter", "greet", {"name": name, "delay_seconds": 0.2})

    def greeting_sent() -> bool:
        drafts = mailer.ledger.entries("draft", name=name)
        return bool(drafts) and mailer.ledger.count("send",
                                                    greeting_id=drafts[0]["greeting_id"]) == 1

    deadline = time.monotonic() + 30
    while not greeting_sent():
        sum(i * i for i in range(20_000))  # busy, like a long-running cell
        assert time.monotonic() < deadline, "the handler stalled while the caller was busy"


def test_an_interrupt_does_not_stop_the_service_host() -> None:
    """The kernel's interrupt button (SIGINT, into the main thread, as in a kernel: here a
    process of its own) stops the cell, not the lab: its service host keeps serving."""
    script = ("import signal\n"
              # Python's own handler, as a kernel has (a child inherits an ignored SIGINT).
              "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
              "from restate_tutorial.lab import Lab\n"
              "from restate_tutorial.patterns.basics import greeter\n"
              "with Lab([greeter]) as lab:\n"
              "    try:\n"
              "        signal.raise_signal(signal.SIGINT)\n"
              "        raise SystemExit('no KeyboardInterrupt')\n"
              "    except KeyboardInterrupt:\n"
              "        pass\n"
              "    assert lab.host.running\n"
              "    print(lab.ingress.call('Greeter', 'greet', {'name': 'after', "
              "'delay_seconds': 0})['message'])\n")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip().splitlines()[-1] == "Hello after!"


def test_ingress_timeout_says_the_invocation_keeps_running(lab: Lab) -> None:
    with pytest.raises(Exception, match="Restate keeps running it"):
        lab.ingress.call("Greeter", "greet", {"name": "slow", "delay_seconds": 2}, timeout=0.3)


def test_a_lab_started_from_a_thread_outlives_the_thread() -> None:
    """Linux kills a child when the *thread* that forked it ends (PR_SET_PDEATHSIG): a lab
    started, or restarted, from a worker thread must keep its processes all the same."""
    started: list[Lab] = []

    def in_a_thread(action: Callable[[], object]) -> None:
        thread = threading.Thread(target=action)
        thread.start()
        thread.join()
        task = Path(f"/proc/self/task/{thread.native_id}")
        wait_until(lambda: not task.exists(), 5, "the thread to be gone")

    in_a_thread(lambda: started.append(Lab([greeter]).start()))
    lab = started[0]
    try:
        assert lab.running
        in_a_thread(lab.server.restart)
        in_a_thread(lambda: lab.broker.kill() or lab.broker.start())
        assert lab.running
        assert lab.ingress.call("Greeter", "greet", {"name": "T", "delay_seconds": 0})
    finally:
        lab.stop()


def test_a_lab_leaves_nothing_in_the_temp_dir(temp_dir: Path) -> None:
    """Everything the lab's processes write stays in its data dir, which stop() deletes —
    restate-server's crash-restarts included."""
    temp = Path(tempfile.gettempdir())
    assert temp == temp_dir
    before = set(temp.iterdir())
    with Lab([greeter]) as lab:
        assert lab.data_dir.parent == temp
        lab.server.restart()
        lab.ingress.call("Greeter", "greet", {"name": "T", "delay_seconds": 0})
    assert set(temp.iterdir()) - before == set()


def test_a_process_that_ran_servers_and_brokers_leaves_nothing_in_the_temp_dir(
        temp_dir: Path) -> None:
    """Standalone parts too: a RestateServer or KafkaBroker made without a data dir gets a temp
    dir of its own, deleted when the process exits (an external broker gets none)."""
    temp = temp_dir  # the subprocess's $TMPDIR
    before = set(temp.iterdir())
    script = ("from restate_tutorial.lab import KafkaBroker, RestateServer\n"
              "server = RestateServer().start(); broker = KafkaBroker().start()\n"
              "KafkaBroker(bootstrap_servers=broker.bootstrap_servers).topics()\n"
              "server.stop(); broker.stop()\n")
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    assert set(temp.iterdir()) - before == set()


def test_wait_until_ended_waits_for_every_invocation_named(lab: Lab) -> None:
    """The one way tests wait before reading a status: it returns only once each invocation
    has ended — also one that was still sleeping when the wait began."""
    key = f"ended-{uuid.uuid4().hex[:6]}"
    quick = lab.ingress.send("Inbox", "add", {"n": 1}, key=key)
    slow = lab.ingress.send("Greeter", "greet", {"name": key, "delay_seconds": 1})
    assert {r["status"] for r in lab.admin.sql(f"SELECT status FROM sys_invocation WHERE id = "
                                               f"'{slow}'")} != {"completed"}
    rows = lab.admin.wait_until_ended(quick, slow)
    assert [r["id"] for r in rows] == [quick, slow]
    assert {r["status"] for r in rows} == {"completed"}
    [row] = lab.admin.wait_until_ended(service="Inbox", key=key)
    assert row["completion_result"] == "success"
    with pytest.raises(LabError, match="to end"):
        lab.admin.wait_until_ended(service="Inbox", key=key, count=2, timeout=0.5)
    with pytest.raises(ValueError, match="name the invocations"):
        lab.admin.wait_until_ended()


def test_the_service_host_serves_one_connection_past_a_thousand_requests() -> None:
    """restate-server keeps one HTTP/2 connection per deployment: the host must not close it
    after 1,000 requests (hypercorn's default), or the 1,001st attempt hangs for ever."""
    clients: set[tuple[str, int]] = set()  # the client address of each request: one per connection

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        clients.add(tuple(scope["client"]))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    host = ServiceHost(app).start()
    try:
        # HTTP/2 with prior knowledge, on one connection, as restate-server talks to the host.
        with httpx.Client(transport=httpx.HTTPTransport(http1=False, http2=True),
                          timeout=5) as client:
            answers = [client.get(f"{host.url}/{n}").status_code for n in range(1_005)]
        assert answers == [200] * 1_005
        assert len(clients) == 1, f"the host closed the connection: {len(clients)} were needed"
    finally:
        host.stop()
