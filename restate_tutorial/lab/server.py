"""A real restate-server process: own data dir, loopback listeners, crash and restart."""

from __future__ import annotations

import functools
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx

from . import processes
from .binaries import RESTATE_VERSION, restate_server_binary
from .errors import LabError
from .failover import tls
from .processes import LOOPBACK


@functools.cache
def _probe() -> httpx.Client:
    """One HTTP client for the health probes of this process: a wait probes every 20 ms, and
    each ``httpx.get`` would make a client of its own (see :func:`failover.tls`)."""
    return httpx.Client(verify=tls())

#: The settings of every server the lab starts (shipped inside the package).
CONFIG_FILE = Path(__file__).with_name("restate.toml")


@dataclass(frozen=True)
class RestatePorts:
    ingress: int = 8080
    admin: int = 9070
    node: int = 5122

    @classmethod
    def free(cls) -> RestatePorts:
        return cls(processes.free_port(), processes.free_port(), processes.free_port())


#: Where restate-server 1.7 takes the key it signs its requests to services with (1.6: the
#: root-level setting, RESTATE_REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE).
PRIVATE_KEY_SETTING = "RESTATE_WORKER__INVOKER__REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE"


class RestateServer:
    """One restate-server node.

    ``kill()`` is a crash (SIGKILL); ``start()`` afterwards comes back on the same data dir and
    ports, so everything Restate had recorded is still there.
    """

    def __init__(self, ports: RestatePorts | None = None, data_dir: Path | None = None,
                 node_name: str = "lab", cluster_env: dict[str, str] | None = None,
                 version: str = RESTATE_VERSION) -> None:
        self.ports = ports or RestatePorts.free()
        #: The restate-server version this node runs (from its next start): the pinned one,
        #: or another from npm (installed on first use) — an upgrade, or a rollback.
        self.version = version
        #: The Kafka brokers, given at start-up as the cluster "my-cluster" — set by a lab that
        #: began on a version before 1.7 (1.7 takes them through the admin API), for every
        #: version its nodes then run.
        self.kafka_brokers: str | None = None
        self.data_dir = data_dir or processes.temp_dir("restate-server-")
        self.node_name = node_name
        self.cluster_env = cluster_env or {}  # settings shared by the nodes of a cluster
        self.log_file = self.data_dir / "restate-server.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def ingress_url(self) -> str:
        return f"http://{LOOPBACK}:{self.ports.ingress}"

    @property
    def admin_url(self) -> str:
        return f"http://{LOOPBACK}:{self.ports.admin}"

    def metrics(self) -> dict[str, float]:
        """The server's Prometheus metrics now (``<node url>/metrics``): each sample by its
        name and labels, e.g. ``restate_ingress_requests_total{status="success"}``."""
        return read_metrics(f"{self.node_url.rstrip('/')}/metrics")

    @property
    def node_url(self) -> str:
        """The node-to-node (fabric) address, what ``restatectl --address`` wants."""
        return f"http://{LOOPBACK}:{self.ports.node}/"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self.running and self._process else None

    def start(self, timeout: float = 30.0) -> RestateServer:
        """Start and wait until admin and ingress answer; a no-op when already running."""
        self.launch()
        self.wait_ready(timeout)
        return self

    def launch(self) -> None:
        """Start the process without waiting (the nodes of a cluster start together)."""
        if self.running:
            return
        binary = restate_server_binary(self.version)
        for port, what in ((self.ports.ingress, "Restate ingress"),
                           (self.ports.admin, "Restate admin"), (self.ports.node, "Restate node")):
            processes.ensure_port_free(port, what)
        env = {
            "RESTATE_BASE_DIR": str(self.data_dir),
            "RESTATE_NODE_NAME": self.node_name,
            "RESTATE_BIND_ADDRESS": f"{LOOPBACK}:{self.ports.node}",
            "RESTATE_ADVERTISED_ADDRESS": self.node_url,
            "RESTATE_INGRESS__BIND_ADDRESS": f"{LOOPBACK}:{self.ports.ingress}",
            "RESTATE_ADMIN__BIND_ADDRESS": f"{LOOPBACK}:{self.ports.admin}",
            # The lab registers its own broker through the admin API instead.
            "RESTATE_INGRESS__KAFKA_CLUSTERS": "[]",
            # restate-server leaves `invoker-<id>` dirs in $TMPDIR: keep them in the data dir.
            "TMPDIR": str(self.data_dir / "tmp"),
            # One partition for a node of its own (a cluster sets 4, to spread leaders): a
            # restart costs ~30 % less CPU, and a lab restarts its server often.
            "RESTATE_DEFAULT_NUM_PARTITIONS": "1",
            **self.cluster_env,
        }
        if self.kafka_brokers:
            env["RESTATE_INGRESS__KAFKA_CLUSTERS"] = (
                f'[{{name="my-cluster",brokers=["{self.kafka_brokers}"]}}]')
        if self.before_1_7 and (key := env.pop(PRIVATE_KEY_SETTING, None)):
            env["RESTATE_REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE"] = key  # 1.6's older setting
        (self.data_dir / "tmp").mkdir(parents=True, exist_ok=True)
        self._process = processes.spawn(
            [str(binary), "--config-file", str(CONFIG_FILE), "--no-logo"],
            self.log_file, env=env, cwd=self.data_dir,
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        processes.wait_until(self._healthy, timeout,
                             f"restate-server {self.node_name} ({self.admin_url})",
                             dead=self._exit_reason)

    def _healthy(self) -> bool:
        """Admin and ingress answer, and every partition answers a query (right after start,
        /health is green a moment before the partition stores are open)."""
        try:
            return (_probe().get(f"{self.admin_url}/health", timeout=1).is_success
                    and _probe().get(f"{self.ingress_url}/restate/health", timeout=1).is_success
                    and _probe().post(f"{self.admin_url}/query", timeout=5,
                                   json={"query": "SELECT count(*) FROM sys_invocation"},
                                   headers={"accept": "application/json"}).is_success)
        except httpx.HTTPError:
            return False

    def _exit_reason(self) -> str | None:
        if self._process is None or self._process.poll() is None:
            return None
        last = self.logs(tail=3).strip().replace("\n", " | ")
        return f"it exited with code {self._process.returncode} (log {self.log_file}: {last})"

    def stop(self) -> None:
        """Graceful shutdown (SIGTERM)."""
        if self._process is not None:
            processes.terminate(self._process)
            self._process = None

    def kill(self) -> None:
        """Crash it: SIGKILL, no chance to flush or say goodbye."""
        if self._process is not None:
            processes.kill(self._process)
            self._process = None

    @property
    def before_1_7(self) -> bool:
        """Whether this node's version takes 1.6's older settings (and no Kafka-cluster API)."""
        return version_tuple(self.version) < (1, 7)

    def restart(self, timeout: float = 30.0, version: str | None = None,
                graceful: bool = False) -> RestateServer:
        """Crash-restart (or, ``graceful``, stop and start) on the same data dir and ports — on
        ``version``, if given: an upgrade or a rollback (the data a version wrote is read by the
        next minor version, and by the previous one as long as no feature new in the later one
        was used)."""
        if version is not None:
            restate_server_binary(version)  # installed before the node goes down
        if graceful:
            self.stop()
        else:
            self.kill()
        self.version = version or self.version
        return self.start(timeout)

    def logs(self, tail: int | None = None) -> str:
        """What the server printed (the last ``tail`` lines, or all)."""
        if not self.log_file.exists():
            return ""
        lines = self.log_file.read_text(errors="replace").splitlines()
        return "\n".join(lines[-tail:] if tail else lines)

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"RestateServer(ingress={self.ingress_url}, admin={self.admin_url}, {state})"


class ExternalRestate:
    """A Restate someone else runs (RESTATE_ADMIN_URL / RESTATE_INGRESS_URL): the lab uses it,
    and never starts, stops or crashes it."""

    def __init__(self, admin_url: str, ingress_url: str) -> None:
        self.admin_url = admin_url.rstrip("/")
        self.ingress_url = ingress_url.rstrip("/")

    @classmethod
    def from_env(cls) -> ExternalRestate | None:
        admin, ingress = os.environ.get("RESTATE_ADMIN_URL"), os.environ.get("RESTATE_INGRESS_URL")
        if not admin and not ingress:
            return None
        if not (admin and ingress):
            raise LabError("Set both RESTATE_ADMIN_URL and RESTATE_INGRESS_URL to use your own "
                           "Restate, or neither to let the lab start one.")
        return cls(admin, ingress)

    @property
    def running(self) -> bool:
        try:
            return _probe().get(f"{self.admin_url}/health", timeout=1).is_success
        except httpx.HTTPError:
            return False

    @property
    def pid(self) -> None:
        return None

    def start(self, timeout: float = 30.0) -> ExternalRestate:
        """Wait until it answers."""
        processes.wait_until(lambda: self.running, timeout,
                             f"the external Restate at {self.admin_url} (RESTATE_ADMIN_URL)")
        return self

    def stop(self) -> None:
        """Leave it running: it is not ours."""

    def kill(self) -> None:
        raise LabError(f"Restate at {self.admin_url} is external: the lab cannot crash it; "
                       "restart it yourself, or unset RESTATE_ADMIN_URL for a lab-run server.")

    def restart(self, timeout: float = 30.0) -> ExternalRestate:
        self.kill()
        return self

    def logs(self, tail: int | None = None) -> str:
        return ""

    def __repr__(self) -> str:
        return f"ExternalRestate(ingress={self.ingress_url}, admin={self.admin_url})"


def read_metrics(url: str) -> dict[str, float]:
    """Prometheus text exposition at ``url``, as ``{'name{label="value",…}': value}``."""
    from prometheus_client.parser import text_string_to_metric_families

    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(httpx.get(url, timeout=10).text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def version_tuple(version: str) -> tuple[int, ...]:
    """"1.6.2" → (1, 6, 2)."""
    return tuple(int(part) for part in version.split(".")[:3])
