"""The whole lab in one object: restate-server + Kafka broker + service host, wired up."""

from __future__ import annotations

import atexit
import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import restate

from . import processes
from .admin import AdminClient
from .binaries import RESTATE_VERSION
from .cli import restate_cli
from .cluster import RestateCluster
from .errors import LabError
from .identity import PRIVATE_KEY_SETTING, RequestIdentity, external_public_key
from .ingress import IngressClient
from .kafka import KafkaBroker
from .postgres import PostgresServer
from .processes import LOOPBACK
from .server import ExternalRestate, RestatePorts, RestateServer
from .service_host import ServiceHost
from .stalls import StallWatch, StuckRecord
from .traces import TraceCollector

# The SDK logs every failed attempt with a long traceback; the logbook turns each into one line
# (and keeps it for logbook.show()), for every lab, whatever the notebook imported.
from .. import database  # noqa: E402  isort: skip
from .. import logbook  # noqa: E402, F401  isort: skip

KAFKA_CLUSTER = "my-cluster"


@dataclass(frozen=True)
class LabPorts:
    restate: tuple[RestatePorts, ...]  # one per restate-server node
    services: int
    kafka: int

    @classmethod
    def seed(cls, nodes: int = 1) -> LabPorts:
        """The ports of the seed's instructions (``curl localhost:8080/…``); further nodes of a
        cluster take the next ports (8081, 9071, 5123, …)."""
        return cls(tuple(RestatePorts(8080 + i, 9070 + i, 5122 + i) for i in range(nodes)),
                   services=9080, kafka=9092)

    @classmethod
    def free(cls, nodes: int = 1) -> LabPorts:
        return cls(tuple(RestatePorts.free() for _ in range(nodes)),
                   services=processes.free_port(), kafka=processes.free_port())

    @property
    def ingress(self) -> int:
        return self.restate[0].ingress

    @property
    def admin(self) -> int:
        return self.restate[0].admin


_started: list[Lab] = []
DATA_DIR_PREFIX = "restate-lab-"
OWNER_FILE = "owner.pid"


def _remove_abandoned_data_dirs() -> None:
    """Delete the data dirs of labs whose process died without cleaning up (e.g. SIGKILLed):
    everything a lab's processes write is inside its data dir, so nothing else is left."""
    for folder in Path(tempfile.gettempdir()).glob(f"{DATA_DIR_PREFIX}*"):
        try:
            owner = int((folder / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue  # not a lab's, or still being set up
        if owner != os.getpid() and not _process_exists(owner):
            shutil.rmtree(folder, ignore_errors=True)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists; it is someone else's
    return True


class Lab:
    """A real restate-server, a Kafka broker and ``services`` served in this process.

    ``Lab(services).start()`` (or ``with Lab(services) as lab:``) brings everything up, registers
    the services and the Kafka cluster ``my-cluster``; ``stop()`` — or the end of this process,
    however it ends — takes it all down. Ports are free ones unless given.

    ``server_settings`` are restate-server settings as environment variables (``RESTATE_…``),
    e.g. the harness modes of :mod:`restate_tutorial.testing`.

    External mode, from the environment: RESTATE_ADMIN_URL + RESTATE_INGRESS_URL use your own
    Restate instead of starting one; KAFKA_BOOTSTRAP_SERVERS your own Kafka;
    RESTATE_TUTORIAL_SERVICE_URL is where that Restate reaches the service host (default
    http://127.0.0.1:<services port>). The lab then starts only the service host.
    """

    def __init__(self, services: Sequence[Any], *, nodes: int = 1, ports: LabPorts | None = None,
                 data_dir: Path | None = None, topics: Sequence[str] = (),
                 server_settings: dict[str, str] | None = None, traces: bool = False,
                 restate_version: str = RESTATE_VERSION) -> None:
        self.services = list(services)
        #: Where restate-server and the service host send traces (OTLP/HTTP): this lab's own
        #: collector (``traces=True``), else OTEL_EXPORTER_OTLP_ENDPOINT, else nowhere.
        self.traces = TraceCollector() if traces else None
        self.otlp_endpoint = (self.traces.endpoint if self.traces
                              else os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None)
        if self.otlp_endpoint:
            try:
                traces_url = tracing().otlp_traces_url(self.otlp_endpoint)
            except ValueError as wrong:
                raise LabError(str(wrong)) from None
        self.ports = ports or LabPorts.free(nodes)
        external = ExternalRestate.from_env()  # before making a data dir: it may refuse
        self._owns_data_dir = data_dir is None
        if data_dir is None:
            _remove_abandoned_data_dirs()
            data_dir = Path(tempfile.mkdtemp(prefix=DATA_DIR_PREFIX))
            (data_dir / OWNER_FILE).write_text(str(os.getpid()))
        self.data_dir = Path(data_dir)
        self.topics = list(topics)
        self.server: RestateServer | RestateCluster | ExternalRestate = (
            external
            or (RestateCluster(self.ports.restate, self.data_dir / "restate")
                if len(self.ports.restate) > 1
                else RestateServer(self.ports.restate[0], self.data_dir / "restate")))
        self.broker = KafkaBroker.from_env(self.ports.kafka, self.data_dir)
        #: Your own database, started only for a service that keeps data there.
        self.postgres: PostgresServer | None = None
        every = self.server.nodes if isinstance(self.server, RestateCluster) else [self.server]
        # Signed requests: only this lab's Restate gets its requests run by the service host.
        if external:
            self.identity_keys = [key] if (key := external_public_key()) else []
        else:
            identity = RequestIdentity.new()
            pem = identity.write(self.data_dir / "request-identity.pem")
            self.identity_keys = [identity.public_key]
            for node in every:
                if isinstance(node, RestateServer):
                    node.cluster_env[PRIVATE_KEY_SETTING] = str(pem)
        self.host = ServiceHost(self._app(self.services), self.ports.services)
        # lab.serve(...): every deployment at a path of its own on one more host.
        self.mounts = Mounts()
        self.served: dict[str, str] = {}  # deployment id → its path on that host
        self._serving_host: ServiceHost | None = None
        self._paths = itertools.count(1)
        self.service_url = os.environ.get("RESTATE_TUTORIAL_SERVICE_URL") or self.host.url
        for node in every:  # RESTATE_… settings for each restate-server the lab starts
            if isinstance(node, RestateServer):
                node.version = restate_version
                node.cluster_env.update(server_settings or {})
                if self.otlp_endpoint:
                    node.cluster_env["RESTATE_TRACING_ENDPOINT"] = "otlp+" + traces_url
                    if self.traces is not None:  # spans in the notebook a moment after, not 5 s
                        node.cluster_env["OTEL_BSP_SCHEDULE_DELAY"] = "200"
        self.admin = AdminClient([n.admin_url for n in every])
        self.stalls = StallWatch(lambda: [n.log_file for n in every
                                          if isinstance(n, RestateServer)],
                                 skip_command=self._skip_command)
        self.ingress = IngressClient([n.ingress_url for n in every],
                                     describe=self.admin.describe_unfinished)

    @contextmanager
    def paced(self, seconds: float) -> Iterator[None]:
        """Meanwhile every service host holds each message a handler sends Restate ``seconds``:
        a crash then lands right after the effect or journal entry it aims at."""
        for host in self.service_hosts:
            host.pace = seconds
        try:
            yield
        finally:
            for host in self.service_hosts:
                host.pace = 0.0

    @property
    def nodes(self) -> list[RestateServer]:
        """The restate-server nodes this lab runs (none for an external Restate)."""
        every = self.server.nodes if isinstance(self.server, RestateCluster) else [self.server]
        return [node for node in every if isinstance(node, RestateServer)]

    @property
    def cluster(self) -> RestateCluster:
        """The cluster, for a lab started with ``nodes`` > 1."""
        if not isinstance(self.server, RestateCluster):
            raise LabError("This lab runs a single restate-server: start it with Lab(…, nodes=3) "
                           "for a cluster.")
        return self.server

    @property
    def external(self) -> bool:
        """True when Restate is not run by the lab (crash demos need a lab-run server)."""
        return isinstance(self.server, ExternalRestate)

    @classmethod
    def shared(cls, services: Sequence[Any], nodes: int = 1, **options: Any) -> Lab:
        """The running lab of this process with the same services and nodes, else a new one,
        started. Lets a notebook cell that starts the lab be run twice without starting a
        second lab."""
        names = sorted(_name(s) for s in services)
        for lab in _started:
            if (sorted(_name(s) for s in lab.services) == names
                    and len(lab.ports.restate) == nodes and lab.running
                    and (lab.traces is not None) == bool(options.get("traces"))):
                return lab
        return cls(services, nodes=nodes, **options).start()

    @property
    def running(self) -> bool:
        return self.server.running and self.broker.running and self.host.running

    def start(self) -> Lab:
        """Start (or finish starting) every part; stops what it started if a part fails."""
        try:
            if self.traces is not None:
                self.traces.start()
            if self.otlp_endpoint:
                tracing().export_to(self.otlp_endpoint)
            self.broker.start()
            if any(node.before_1_7 for node in self.nodes):
                for node in self.nodes:  # 1.6 is told the broker at start-up, not by the API
                    node.kafka_brokers = self.broker.bootstrap_servers
            self.server.start()
            self._start_postgres_for(self.services)
            self.host.start()
            self.admin.register_deployment(self.service_url)
            if not any(node.kafka_brokers for node in self.nodes):
                self.admin.register_kafka_cluster(KAFKA_CLUSTER, self.broker.bootstrap_servers)
            if self.topics:
                self.broker.create_topics(*self.topics)
            self.stalls.start()  # a Kafka record Restate cannot consume: one WARNING line
        except BaseException:
            self.stop()
            raise
        if self not in _started:
            _started.append(self)
        return self

    @property
    def service_hosts(self) -> list[ServiceHost]:
        """The hosts serving this lab's services: its own, and lab.serve's if it has one."""
        return [host for host in (self.host, self._serving_host) if host is not None]

    def serve(self, *services: Any, journal_value_codec: Any = None) -> Deployment:
        """Serve ``services`` — yours, e.g. defined in a notebook cell — from this running lab,
        as a new Restate deployment; returns the deployment's id. A ``journal_value_codec``
        (the SDK's) transforms every value the deployment's handlers journal (e.g. encrypts).

        Run it again after editing the code and the edited code is served: Restate deployments
        are immutable, so each call registers a new deployment, served at a path of its own by
        one service host (however often you serve, one port and one thread). New invocations go
        to the newest one; invocations already running finish on the code they started with.
        """
        own = {_name(s) for s in self.services}
        clashes = [_name(s) for s in services if _name(s) in own]
        if clashes:
            raise LabError(f"{clashes[0]} is one of this lab's own services: give yours another "
                           f"name (e.g. restate.Workflow(\"My{clashes[0]}\")) so that both can "
                           "be served side by side.")
        self._start_postgres_for(services)
        if self._serving_host is None:
            self._serving_host = ServiceHost(self.mounts)
        host = self._serving_host.start()
        path = f"d{next(self._paths)}"  # a path of its own, also for two serves at once
        self.mounts.apps[path] = self._app(services, journal_value_codec)
        try:
            deployment = self.admin.register_deployment(f"{host.url}/{path}", force=False)
        except BaseException:
            del self.mounts.apps[path]
            raise
        self.served[str(deployment["id"])] = path
        return Deployment(deployment["id"], [_name(s) for s in services])

    def _start_postgres_for(self, services: Sequence[Any]) -> None:
        """PostgreSQL, if one of ``services`` keeps data there (`database.uses`)."""
        if not database.needed_by(services):
            return
        if self.postgres is None:
            self.postgres = PostgresServer.from_env(self.data_dir / "postgres")
        database.point_at(self.postgres.start().url)

    def _app(self, services: Sequence[Any], journal_value_codec: Any = None) -> Any:
        """The ASGI app serving ``services``: it runs only requests signed by this lab's Restate."""
        app = restate.app(services=list(services), identity_keys=self.identity_keys or None,
                          journal_value_codec=journal_value_codec)
        return tracing().traced(app) if self.otlp_endpoint else app

    def replace_code(self, deployment_id: str, *services: Any) -> None:
        """Serve ``services`` instead of the code of deployment ``deployment_id`` (one of
        ``serve``'s), at the same address, without telling Restate.

        This is what an in-place redeploy does, and exactly what Restate's immutable deployments
        assume never happens: an invocation pinned to the deployment replays its journal on
        code it did not start with. Notebook 05 shows where that leads (a journal mismatch).
        """
        path = self.served.get(deployment_id)
        if path is None:
            raise LabError(f"{deployment_id} is not a deployment served by lab.serve(...): "
                           f"pick one of {', '.join(self.served) or '(none yet)'}.")
        self.mounts.apps[path] = self._app(services)
        # A redeploy in place restarts the process: the requests in flight are cut off, and
        # Restate retries them — on the new code. (Every deployment of lab.serve shares this
        # host: theirs are retried too, on the code they had, which replays as before.)
        assert self._serving_host is not None
        self._serving_host.restart()

    def stop(self) -> None:
        """Stop everything (idempotent); a lab-made data dir is deleted."""
        if self._serving_host is not None:
            self._serving_host.stop()
        self.stalls.stop()
        self.host.stop()
        self.server.stop()
        self.broker.stop()
        if self.postgres is not None:
            self.postgres.stop()
        if self.otlp_endpoint:
            tracing().stop_exporting_to(self.otlp_endpoint)
        if self.traces is not None:
            self.traces.stop()
        if self in _started:
            _started.remove(self)
        if self._owns_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def subscribe(self, topic: str, service: str, handler: str,
                  options: dict[str, str] | None = None) -> dict[str, Any]:
        """Feed ``topic`` into ``service/handler`` (idempotent; topic created if missing)."""
        self.broker.create_topics(topic)
        return self.admin.subscribe(topic, service, handler, KAFKA_CLUSTER, options)

    def _skip_command(self, record: StuckRecord) -> str:
        """The command that skips ``record`` (the flags only where they differ from make up's)."""
        flags = [] if self.admin.url == f"http://{LOOPBACK}:9070" else [
            "--admin-url", self.admin.url]
        if self.broker.bootstrap_servers != f"{LOOPBACK}:9092":
            flags += ["--kafka", self.broker.bootstrap_servers]
        return " ".join([".venv/bin/python -m restate_tutorial skip-record", record.subscription,
                         str(record.partition), str(record.offset), *flags])

    def cli(self, *args: str) -> str:
        """Run the official ``restate`` CLI against this lab, e.g. ``lab.cli("kv", "get", …)``."""
        return restate_cli(self.server.admin_url, self.server.ingress_url, *args)

    def show_cli(self, *args: str) -> None:
        """Print ``$ restate <args>`` and what it printed: the command to copy, and its answer."""
        print(f"$ restate {' '.join(args)}")
        try:
            print(self.cli(*args).rstrip())
        except LabError as error:  # e.g. killing an invocation that has ended: it says so
            print(error)

    def restart_broker(self) -> None:
        """Crash and restart the embedded broker, then make events flow again.

        The embedded broker keeps everything in memory: its topics, the records Restate had not
        consumed yet, and the consumer offsets are gone. What Restate had consumed (its
        invocations, journals and state) is not. The topics are created again, and each
        subscription on ``my-cluster`` is deleted and created again with its options, so that
        its new consumer group starts at the beginning of the new, empty topic.
        """
        subscriptions = [s for s in self.admin.subscriptions()
                         if s["source"].startswith(f"kafka://{KAFKA_CLUSTER}/")]
        # Unsubscribe first: a consumer of the old subscription must not read a record of the
        # new broker that the new subscription will read too (two invocations of one record).
        for old in subscriptions:
            self.admin.unsubscribe(old["id"])
        self.broker.kill()
        self.broker.start()
        topics = {s["source"].rsplit("/", 1)[1] for s in subscriptions} | set(self.topics)
        if topics:
            self.broker.create_topics(*sorted(topics))
        for old in subscriptions:
            service, handler = old["sink"].removeprefix("service://").split("/")
            options = {k: v for k, v in (old.get("options") or {}).items()
                       if k not in ("group.id", "client.id")}  # a fresh consumer group
            self.admin.subscribe(old["source"].rsplit("/", 1)[1], service, handler,
                                 KAFKA_CLUSTER, options)

    def ready_line(self) -> str:
        external = (" (external Restate)" if self.external
                    else f" ({len(self.cluster.nodes)}-node cluster)"
                    if isinstance(self.server, RestateCluster) else "")
        return (f"Restate lab ready: ingress {self.server.ingress_url} · admin "
                f"{self.server.admin_url}{external} · services {self.host.url} · Kafka "
                f"{self.broker.bootstrap_servers} · UI {self.server.admin_url}/ui/"
                + (f" · PostgreSQL {self.postgres.url}" if self.postgres else "")
                + (f" · traces to {self.otlp_endpoint}" if self.otlp_endpoint else ""))

    def __enter__(self) -> Lab:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Lab({self.server!r}, {self.broker!r}, {self.host!r})"


def tracing() -> Any:
    """restate_tutorial.tracing, imported only by a lab that exports traces (it needs the
    OpenTelemetry SDK: `pip install 'restate-tutorial[tracing]'`)."""
    try:
        from .. import tracing
    except ImportError as missing:
        raise LabError(f"Exporting traces needs the OpenTelemetry SDK ({missing.name} is not "
                       "installed): pip install 'restate-tutorial[tracing]'.") from None
    return tracing


class Mounts:
    """One ASGI app serving several, each under a path of its own: ``/d1/…`` goes to
    ``apps["d1"]`` (the Restate SDK's app finds its routes under any path)."""

    def __init__(self) -> None:
        self.apps: dict[str, Any] = {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"{scope['type']} is not served")  # lifespan: none needed
        app = self.apps.get(scope["path"].split("/", 2)[1])
        if app is None:
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await app(scope, receive, send)


class Deployment(str):
    """A deployment's id (a plain ``str``) that, shown in a notebook, says what happened."""

    services: tuple[str, ...]

    def __new__(cls, deployment_id: str, services: Sequence[str]) -> Deployment:
        served = super().__new__(cls, deployment_id)
        served.services = tuple(services)
        return served

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(f"Served {', '.join(self.services)} as a new deployment ({self}): new "
                     "invocations run this code.")


def _name(service: Any) -> str:
    return str(getattr(service, "name", service))


def _one_line_lab_errors_in_ipython() -> None:
    """In Jupyter, show a LabError as its one sentence instead of a wall of traceback."""
    try:
        ipython = get_ipython()  # type: ignore[name-defined]  # noqa: F821
    except NameError:
        return

    def show(shell: Any, kind: type, error: BaseException, tb: Any, tb_offset: Any = None) -> None:
        # Still an error output (so the cell counts as failed), with a one-line "traceback".
        shell._showtraceback(kind, error, [f"{kind.__name__}: {error}"])

    ipython.set_custom_exc((LabError,), show)


_one_line_lab_errors_in_ipython()


@atexit.register
def _stop_all() -> None:
    for lab in list(_started):
        lab.stop()
