"""External mode: Restate and Kafka run by someone else (as an operator would), the lab only
serves the services. Also the seed's manual path with the package's restate.toml."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from restate_tutorial.lab import (
    KafkaBroker,
    LabError,
    free_port,
    processes,
    restate_cli,
    wait_until,
)
from restate_tutorial.lab.binaries import PROJECT_DIR, restate_server_binary
from restate_tutorial.lab.failover import tls
from restate_tutorial.lab.postgres import PostgresServer


@dataclass
class Operator:
    """What an operator started, outside the lab: a broker, restate-server and PostgreSQL."""

    broker: KafkaBroker
    ingress_url: str
    admin_url: str
    database_url: str

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "RESTATE_ADMIN_URL": self.admin_url,
                "RESTATE_INGRESS_URL": self.ingress_url,
                "KAFKA_BOOTSTRAP_SERVERS": self.broker.bootstrap_servers,
                "RESTATE_TUTORIAL_DATABASE_URL": self.database_url, **extra}


@pytest.fixture(scope="module")
def operator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    data = tmp_path_factory.mktemp("operator-restate")
    broker = KafkaBroker(log_dir=data).start()
    ingress, admin, node = free_port(), free_port(), free_port()
    # `restate-server --config-file restate.toml`, as in the seed; ports
    # and the broker address differ from the file's (tests never take the fixed ports), set
    # the way an operator would.
    server = processes.spawn(
        [str(restate_server_binary()), "--config-file", str(PROJECT_DIR / "restate.toml")],
        data / "server.log", cwd=data, env={
            "RESTATE_BASE_DIR": str(data), "TMPDIR": str(data),
            "RESTATE_BIND_ADDRESS": f"127.0.0.1:{node}",
            "RESTATE_ADVERTISED_ADDRESS": f"http://127.0.0.1:{node}/",
            "RESTATE_INGRESS__BIND_ADDRESS": f"127.0.0.1:{ingress}",
            "RESTATE_ADMIN__BIND_ADDRESS": f"127.0.0.1:{admin}",
            "RESTATE_INGRESS__KAFKA_CLUSTERS":
                f'[{{name="my-cluster",brokers=["{broker.bootstrap_servers}"]}}]',
        })
    admin_url = f"http://127.0.0.1:{admin}"
    wait_until(lambda: _answers(f"{admin_url}/health"), 30, "the operator's restate-server")
    postgres = PostgresServer(processes.temp_dir("operator-postgres-")).start()
    try:
        yield Operator(broker, f"http://127.0.0.1:{ingress}", admin_url, postgres.url)
    finally:
        processes.terminate(server)
        broker.stop()
        postgres.stop()


_http = httpx.Client(verify=tls())  # polled: a client per probe costs ~65 ms of CPU


def _answers(url: str) -> bool:
    try:
        return _http.get(url, timeout=1).is_success
    except httpx.HTTPError:
        return False


def test_the_seeds_manual_steps_work_with_the_projects_restate_toml(operator: Operator) -> None:
    # 1. The service (our `up`, which in external mode starts only the service host).
    up = subprocess.Popen([sys.executable, "-m", "restate_tutorial", "up", "--free-ports",
                           "--no-subscribe"], env=operator.env(), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    try:
        ready = up.stdout.readline()  # type: ignore[union-attr]
        assert "(external Restate)" in ready, ready + up.stderr.read()  # type: ignore[union-attr]
        services = ready.split("services ")[1].split()[0]
        # 2. `up` registered its deployment: once, revision 1 of every service.
        listed = restate_cli(operator.admin_url, operator.ingress_url, "deployments", "list")
        assert services.rsplit(":", 1)[1] in listed and _revisions(operator) == {"1"}, listed
        # 3. The README's subscription curl, its body verbatim (docker compose creates the topic).
        operator.broker.create_topics("package-location-updates")
        created = httpx.post(f"{operator.admin_url}/subscriptions", json=_readme_subscription())
        assert created.is_success, created.text
        # 4. The seed's enrichment flow.
        httpx.post(f"{operator.ingress_url}/PackageTracker/package123/RegisterPackage",
                   json={"finalDestination": "Bridge 6, Amsterdam"}).raise_for_status()
        operator.broker.produce("package-location-updates", "package123",
                                {"timestamp": "2024-10-10 13:00",
                                 "location": "Pinetree Road 5, Paris"})

        def located() -> bool:
            info = httpx.get(f"{operator.ingress_url}/PackageTracker/package123/getPackageInfo")
            return len(info.json()["locations"]) == 1

        wait_until(located, 30, "the location update (the README's consumer options)",
                   interval=0.2)
        # 5. Accounts keep their data in the operator's PostgreSQL: the lab started none.
        assert f"· PostgreSQL {operator.database_url}" in ready, ready
        httpx.post(f"{operator.ingress_url}/Accounts/Open", timeout=30,
                   json={"account": "operator-1", "balance_cents": 700}).raise_for_status()
        with psycopg.connect(operator.database_url) as conn:
            assert conn.execute("SELECT balance_cents FROM accounts WHERE id = 'operator-1'"
                                ).fetchone() == (700,)
    finally:
        up.send_signal(signal.SIGTERM)
        assert up.wait(30) == 0


def _revisions(operator: Operator) -> set[str]:
    services = httpx.get(f"{operator.admin_url}/services").json()["services"]
    return {str(service["revision"]) for service in services}


def _readme_subscription() -> dict[str, Any]:
    """The body of the subscription curl in the README's manual path."""
    readme = (PROJECT_DIR / "README.md").read_text()
    manual = readme.split("the original example's manual path works", 1)[1].split("```", 2)[1]
    return json.loads(re.search(r"-d '(\{.*\})'", manual)[1])  # type: ignore[index]


def test_scenario_suite_passes_in_external_mode(operator: Operator) -> None:
    """The same scenario tests, with the lab in external mode (crash tests deselected: the
    lab cannot SIGKILL a Restate it does not run)."""
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not lab_restate",
         "tests/patterns/test_sagas.py", "tests/patterns/test_event_enrichment.py"],
        cwd=PROJECT_DIR, env=operator.env(), capture_output=True, text=True, timeout=600)
    summary = run.stdout.strip().splitlines()[-1]
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in summary and "failed" not in summary and "skipped" not in summary


def test_external_restate_cannot_be_crashed_by_the_lab(operator: Operator,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from restate_tutorial.lab import Lab
    from restate_tutorial.patterns.basics import greeter

    for name, value in operator.env().items():
        monkeypatch.setenv(name, value)
    with Lab([greeter]) as lab:
        assert lab.external and lab.server.pid is None
        assert lab.ingress.call("Greeter", "greet", {"name": "ext", "delay_seconds": 0})
        with pytest.raises(LabError, match="is external: the lab cannot crash it"):
            lab.server.kill()
    assert _answers(f"{operator.admin_url}/health")  # stopping the lab left Restate running


def test_half_configured_external_mode_is_one_clear_sentence(
        monkeypatch: pytest.MonkeyPatch, temp_dir: Path) -> None:
    from restate_tutorial.lab import Lab

    monkeypatch.setenv("RESTATE_ADMIN_URL", "http://127.0.0.1:9")
    monkeypatch.delenv("RESTATE_INGRESS_URL", raising=False)
    temp = Path(tempfile.gettempdir())
    before = set(temp.iterdir())
    with pytest.raises(LabError, match="Set both RESTATE_ADMIN_URL and RESTATE_INGRESS_URL"):
        Lab([])
    assert set(temp.iterdir()) - before == set()  # refused before it made anything


def test_compose_file_is_valid_against_the_compose_specification() -> None:
    compose = PROJECT_DIR / "docker-compose.yml"
    run = subprocess.run([str(Path(sys.executable).with_name("check-jsonschema")),
                          "--builtin-schema", "vendor.compose-spec", str(compose)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
