"""Bad input and faults: one clear sentence, nothing left running."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import httpx
import psutil
import pytest

from restate_tutorial.lab import (
    KafkaBroker,
    Lab,
    LabError,
    RestatePorts,
    RestateServer,
    binaries,
    free_port,
    processes,
    wait_until,
)
from restate_tutorial.lab.admin import AdminClient
from restate_tutorial.lab.binaries import PROJECT_DIR
from restate_tutorial.lab.traces import TraceCollector
from restate_tutorial.patterns.basics import greeter
from restate_tutorial.scenarios import SEED_BOOKING


def test_port_in_use_is_one_clear_sentence_and_starts_nothing(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        server = RestateServer(RestatePorts(taken, free_port(), free_port()), tmp_path)
        with pytest.raises(LabError, match=f"Port {taken} .* already in use") as caught:
            server.start()
    assert "\n" not in str(caught.value)
    assert not server.running


def test_free_ports_are_distinct_and_outside_the_ephemeral_range() -> None:
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = [free_port() for _ in range(500)]
    assert len(set(ports)) == len(ports)
    assert all(p < low for p in ports)  # no outgoing connection can take one before it is bound


def test_no_other_process_of_ours_gets_a_port_this_one_handed_out() -> None:
    """A lab picks its ports seconds before its servers bind them; meanwhile another test
    worker or notebook kernel finds them free too, unless it sees our claim. (Without claims,
    two sets of 1500 from these ~22,000 ports share ~100.)"""
    ours = {free_port() for _ in range(1500)}
    pick = ("import os; from restate_tutorial.lab import free_port\n"
            "print(os.getpid(), *[free_port() for _ in range(1500)])")
    child, *picked = subprocess.run([sys.executable, "-c", pick], check=True,
                                    capture_output=True, text=True).stdout.split()
    theirs = set(map(int, picked))
    assert len(theirs) == 1500 and not ours & theirs
    owners = {}  # port → pid, of the claims now (other test workers claim ports meanwhile)
    for claim in processes._PORT_CLAIMS.iterdir():
        with contextlib.suppress(FileNotFoundError):  # its owner just ended
            owners[int(claim.name)] = claim.read_text()
    assert all(owners.get(port) == str(os.getpid()) for port in ours)
    assert child not in owners.values()  # a process's claims end with it


def test_missing_server_binary_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    monkeypatch.delenv("RESTATE_SERVER_BIN", raising=False)
    monkeypatch.setattr(binaries, "TOOLS_DIR", tmp_path)
    monkeypatch.setenv("RESTATE_TUTORIAL_TOOLS", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(LabError, match=r"No restate-server binary found: run `make setup`"):
        RestateServer(data_dir=tmp_path).start()


def test_bad_server_binary_override_is_named(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    monkeypatch.setenv("RESTATE_SERVER_BIN", str(tmp_path / "nope"))
    with pytest.raises(LabError, match="RESTATE_SERVER_BIN=.*nope is not an executable"):
        binaries.restate_server_binary()


def test_unreachable_broker_is_one_sentence() -> None:
    broker = KafkaBroker(bootstrap_servers=f"127.0.0.1:{free_port()}")
    with pytest.raises(LabError, match="was not ready within"):
        broker.start(timeout=0.5)


def test_unreachable_admin_and_sql_errors_are_clear(lab) -> None:  # noqa: ANN001
    with pytest.raises(LabError, match="not reachable .* is the lab started"):
        AdminClient(f"http://127.0.0.1:{free_port()}").services()
    with pytest.raises(LabError, match="Restate refused to run the SQL query.*nope"):
        lab.admin.sql("SELECT nope FROM sys_invocation")
    with pytest.raises(LabError, match="Restate refused to register the deployment"):
        lab.admin.register_deployment(f"http://127.0.0.1:{free_port()}")


@pytest.mark.parametrize("started_from, nodes", [("the main thread", 1), ("a worker thread", 1),
                                                 ("the main thread", 3)])
def test_no_child_outlives_a_sigkilled_parent(started_from: str, nodes: int) -> None:
    """Nothing runs on after the process that started the lab is SIGKILLed, and its data dir
    (the only place its processes wrote to) goes with the next lab this machine starts."""
    script = textwrap.dedent(f"""
        import sys, threading
        from restate_tutorial.lab import Lab
        from restate_tutorial.patterns.basics import greeter
        labs = []
        start = lambda: labs.append(Lab([greeter], nodes={nodes}).start())
        if {started_from == "a worker thread"}:
            thread = threading.Thread(target=start)
            thread.start()
            thread.join()
        else:
            start()
        lab = labs[0]
        servers = lab.cluster.nodes if {nodes} > 1 else [lab.server]
        print(*(s.pid for s in servers), lab.broker._process.pid, lab.data_dir, flush=True)
        sys.stdin.read()
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        *pids, data_dir = parent.stdout.readline().split()  # type: ignore[union-attr]
        pids = [int(p) for p in pids]
        assert len(pids) == nodes + 1 and all(psutil.pid_exists(p) for p in pids)
    finally:
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
    wait_until(lambda: not any(_alive(p) for p in pids), 10, "children to die with the parent")
    assert Path(data_dir).is_dir()
    Lab([greeter]).stop()  # a new lab clears what a dead one left
    assert not Path(data_dir).exists()


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _line_starting(up: subprocess.Popen[str], start: str) -> str:
    """The first line of ``up``'s output from now on that starts with ``start`` (within 30 s)."""
    lines: list[str] = []

    def read() -> None:
        for line in up.stdout:  # type: ignore[union-attr]
            lines.append(line)
            if line.startswith(start):
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(30)
    assert lines and lines[-1].startswith(start), f"no line {start!r} in {lines}"
    return lines[-1].strip()


def _as_curl_sends_it(command: str) -> httpx.Response:
    """Send the request of a printed `curl URL -H 'header' -d 'body'` command, as curl would."""
    curl, url, _, header, _, body = shlex.split(command)
    assert curl == "curl" and url.startswith("http://127.0.0.1:"), command
    name, value = header.split(": ")
    return httpx.post(url, headers={name: value}, content=body, timeout=30)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_cli_up_serves_and_stops_cleanly(stop: signal.Signals) -> None:
    """`up` serves every service (the README's curls answer), sends its traces where
    OTEL_EXPORTER_OTLP_ENDPOINT says, and stops cleanly on SIGTERM or Ctrl-C."""
    collector = TraceCollector().start()
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
           "OTEL_BSP_SCHEDULE_DELAY": "200"}  # restate-server's batches: 5 s by default
    up = subprocess.Popen([sys.executable, "-m", "restate_tutorial", "up", "--free-ports"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        ready = up.stdout.readline()  # type: ignore[union-attr]
        assert ready.startswith("Restate lab ready: ingress http://127.0.0.1:"), ready
        ingress = ready.split("ingress ")[1].split()[0]
        assert " · PostgreSQL postgresql://postgres@127.0.0.1:" in ready, ready
        private = up.stdout.readline()  # type: ignore[union-attr]
        assert private.startswith("Private (only Restate and other handlers may call them): ")
        assert {"PriceWatch/Tick", "AirlinePermits/Acquire"} <= set(
            private.split(": ", 1)[1].strip().split(", ")), private
        assert "PriceWatch/Start" not in private
        children = [p.pid for p in psutil.Process(up.pid).children()]
        answer = httpx.post(f"{ingress}/Greeter/greet", json={"name": "cli", "delay_seconds": 0})
        assert answer.json()["message"] == "Hello cli!"
        # The seed's own curl: POST /BookingWorkflow/trip123/Run with the seed's body.
        seed = httpx.post(f"{ingress}/BookingWorkflow/trip123/Run", json=SEED_BOOKING, timeout=30)
        assert seed.status_code == 402
        assert seed.json()["message"] == "This payment should never be accepted! Aborting booking."
        # The README's agent curl: the scripted model serves `up`'s TravelAgent.
        agent = httpx.post(f"{ingress}/TravelAgent/ada/Message",
                           json={"text": "flights from AMS to LIS"}, timeout=30)
        assert agent.json()["reply"].startswith("The best fare for AMS-LIS is"), agent.text
        # The README's Accounts curls: two accounts, a transfer sent twice, moved once.
        for account, cents in (("ada", 5000), ("grace", 0)):
            httpx.post(f"{ingress}/Accounts/Open", timeout=30,
                       json={"account": account, "balance_cents": cents}).raise_for_status()
        rent = {"transfer_id": "rent-1", "from": "ada", "to": "grace", "amount_cents": 1200}
        for _ in range(2):
            moved = httpx.post(f"{ingress}/Accounts/Transfer", json=rent, timeout=30)
            assert moved.json() == {"transfer_id": "rent-1", "status": "applied"}, moved.text
        grace = httpx.post(f"{ingress}/Accounts/Balance", json={"account": "grace"}, timeout=30)
        assert grace.json() == {"account": "grace", "balance_cents": 1200}
        interest = httpx.post(f"{ingress}/Accounts/AddInterest", timeout=30, json={
            "account": "grace", "month": "2026-11", "rate_bp": 100})
        assert interest.json() == {"account": "grace", "month": "2026-11",
                                   "interest_cents": 12}, interest.text
        # The README's Checkout curl; its trace, both halves, at the collector.
        paid = httpx.post(f"{ingress}/Checkout/Pay", timeout=30, json={
            "order_id": "order-1", "card_number": "4242424242424242", "amount": 100})
        assert paid.json() == {"order_id": "order-1", "payment": "order-order-1",
                               "total": 121.0}, paid.text
        collector.wait_for(lambda spans: {"price order", "invocation-attempt Checkout/Pay"}
                           <= {s.name for s in spans}, 30, "the checkout's trace")
        # `up` subscribed the seed's topics: a record on social-media-posts gets processed.
        admin = ready.split("admin ")[1].split()[0]
        kafka = KafkaBroker(bootstrap_servers=ready.split("Kafka ")[1].split()[0])
        kafka.produce("social-media-posts", "userid1",
                      {"content": "Hi! This is my first post!", "metadata": "public"})
        kafka.produce("social-media-posts", "userid9", b"{not json")  # a poison record
        kafka.stop()

        def processed() -> bool:
            rows = httpx.post(f"{admin}/query", headers={"accept": "application/json"}, json={
                "query": "SELECT count(*) AS n FROM sys_invocation WHERE target IN "
                         "('UserFeed/userid1/ProcessPost', 'UserFeed/userid9/ProcessPost') "
                         "AND status = 'completed'"}).json()
            return rows["rows"][0]["n"] == 2

        wait_until(processed, 60, "the record on social-media-posts to be processed")
        # A trip for Ada to approve: `up` prints her message, with the curl that decides.
        httpx.post(f"{ingress}/TripApproval/trip-cli/Run/send", timeout=30,
                   json={**SEED_BOOKING, "approver": "Ada"}).raise_for_status()
        message = _line_starting(up, "✉ to Ada: Approve trip trip-cli? — curl ")
        decided = _as_curl_sends_it(message.split(" — ", 1)[1])
        assert decided.json() == {"trip": "trip-cli", "decision": "approved"}, decided.text
        run = httpx.get(f"{ingress}/restate/workflow/TripApproval/trip-cli/attach", timeout=30)
        assert run.status_code == 402  # approved; the seed's card is then declined
    finally:
        up.send_signal(stop)
        code = up.wait(30)
        collector.stop()
    assert code == 0
    assert "Stopping the lab" in up.stdout.read()  # type: ignore[union-attr]
    logs = up.stderr.read()  # type: ignore[union-attr]
    assert "Traceback" not in logs
    # The poison record is one WARNING line in the terminal: key and reason.
    [warning] = [line for line in logs.splitlines() if "WARNING Rejected" in line]
    assert "'userid9'" in warning and "not valid JSON" in warning
    assert not any(_alive(p) for p in children)


def test_cli_up_runs_a_three_node_cluster() -> None:
    up = subprocess.Popen([sys.executable, "-m", "restate_tutorial", "up", "--free-ports",
                           "--nodes", "3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
    try:
        ready = up.stdout.readline()  # type: ignore[union-attr]
        if not ready:
            up.wait(60)
            pytest.fail(f"up exited with {up.returncode}: {up.stderr.read()}")  # type: ignore[union-attr]
        assert "(3-node cluster)" in ready, ready
        ingress = ready.split("ingress ")[1].split()[0]
        servers = [p for p in psutil.Process(up.pid).children() if "restate-server" in p.name()]
        assert len(servers) == 3
        answer = httpx.post(f"{ingress}/Greeter/greet", json={"name": "nodes", "delay_seconds": 0},
                            timeout=30)
        assert answer.json()["message"] == "Hello nodes!"
    finally:
        up.send_signal(signal.SIGTERM)
        code = up.wait(60)
    assert code == 0
    assert not any(_alive(p.pid) for p in servers)


def test_cli_reports_a_taken_port_in_one_line() -> None:
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            holder.bind(("127.0.0.1", 9092))
            holder.listen()
        except OSError:
            pass  # something else holds 9092 already: `up` must say so all the same
        run = subprocess.run([sys.executable, "-m", "restate_tutorial", "up"],
                             capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert run.stderr.strip().count("\n") == 0
    assert "Port 9092" in run.stderr and "already in use" in run.stderr


def test_make_demo_prints_the_seed_style_logs() -> None:
    """`make demo` runs every scenario headless and prints what the README says it prints."""
    run = subprocess.run(["make", "-s", "demo"], cwd=PROJECT_DIR, capture_output=True, text=True,
                         timeout=600, env={**os.environ, "RESTATE_TUTORIAL_POLL_SECONDS": "0.3"})
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    for line in ("== demo basics", "== demo sagas", "INFO Flight reserved: ",
                 "ERROR This payment should never be accepted! Aborting booking.",
                 "INFO Car cancelled: ", "INFO Flight cancelled: ", "INFO Refunded payment: ",
                 "INFO Created post ", "INFO Updating the user feed for user userid1",
                 "== demo enrichment", "package-info", "Mountain Road 155, Brussels",
                 "== demo approvals", "trip-rejected: [403] rejected by Ada: demo",
                 "trip-expired: [408] trip trip-expired: no decision within 3 s",
                 "== demo fanout", "'partial': True, 'late': ['TP']",
                 "'most at once (an airline)': 2, 'refused (429)': 0",
                 "== demo agent", "agent: Booked KL AMS-LIS for Ada Lovelace: €240",
                 "asks for book_flight", "== demo accounts", "· sent again: {'transfer_id'",
                 "== demo traces", "invocation-attempt Checkout/Pay", "TransientError  3",
                 "'total after': 80000", "'exact': True"):
        assert line in out, line
    assert "Traceback" not in out


def test_ctrl_c_while_up_is_starting_prints_one_line() -> None:
    """Ctrl-C before the ready line: one sentence, no traceback, nothing left running."""
    up = subprocess.Popen([sys.executable, "-m", "restate_tutorial", "up", "--free-ports"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # A deadline, not a speed test: on a loaded 2-core machine `up`'s imports alone take tens
    # of seconds before it starts a child.
    wait_until(lambda: any("restate-server" in p.name() or "tansu" in p.name()
                           for p in psutil.Process(up.pid).children()), 120, "a child of up",
               dead=lambda: None if up.poll() is None else f"up exited: {up.communicate()}")
    children = [p.pid for p in psutil.Process(up.pid).children()]
    up.send_signal(signal.SIGINT)
    out, err = up.communicate(timeout=60)
    # One line: interrupted while starting (or, on a fast machine, "Stopping the lab…" once up).
    assert err.strip().splitlines() in ([], ["Interrupted: the lab is stopped."]), err
    assert up.returncode in (0, 130), (up.returncode, out, err)
    wait_until(lambda: not any(_alive(pid) for pid in children), 30, "the children to exit")
