"""A Kafka-protocol broker: the embedded Tansu (memory only) or your own Kafka."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import warnings
from pathlib import Path
from typing import Any

# kafka-python warns ~200 times, on import, about its own use of deprecated importlib APIs:
# nothing a user of the lab (a notebook, a project's tests) could act on.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka import KafkaAdminClient, KafkaProducer, TopicPartition
    from kafka.admin import NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError
    from kafka.structs import OffsetAndMetadata

from . import processes
from .binaries import tansu_binary
from .errors import LabError
from .processes import LOOPBACK

# kafka-python logs every reconnect attempt at WARNING/ERROR; the lab reports problems itself.
logging.getLogger("kafka").setLevel(logging.CRITICAL)


class KafkaBroker:
    """The embedded broker on 127.0.0.1, or an external Kafka when ``bootstrap_servers`` is given.

    The embedded broker keeps everything in memory: a restart loses topics and offsets.
    """

    def __init__(self, port: int | None = None, bootstrap_servers: str | None = None,
                 log_dir: Path | None = None) -> None:
        self.external = bootstrap_servers is not None
        self.port = port or (0 if self.external else processes.free_port())
        self.bootstrap_servers = bootstrap_servers or f"{LOOPBACK}:{self.port}"
        self._log_dir = log_dir
        self._log_file: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._producer: KafkaProducer | None = None

    @property
    def log_file(self) -> Path:
        """The embedded broker's log (in a temp dir of its own unless ``log_dir`` was given)."""
        if self._log_file is None:
            self._log_file = (self._log_dir or processes.temp_dir("kafka-lab-")) / "broker.log"
        return self._log_file

    @classmethod
    def from_env(cls, port: int | None = None, log_dir: Path | None = None) -> KafkaBroker:
        """External Kafka if KAFKA_BOOTSTRAP_SERVERS is set, else the embedded broker."""
        return cls(port, os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None, log_dir)

    @property
    def running(self) -> bool:
        if self.external:
            return True
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 15.0) -> KafkaBroker:
        """Start the embedded broker (no-op if running or external) and wait until it answers."""
        if not self.external and not self.running:
            binary = tansu_binary()
            processes.ensure_port_free(self.port, "the embedded Kafka broker")
            url = f"tcp://{LOOPBACK}:{self.port}"
            self._process = processes.spawn(
                [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url,
                 "--storage-engine", "memory://tansu/"],
                self.log_file,
            )
        processes.wait_until(self._answers, timeout, f"Kafka broker {self.bootstrap_servers}",
                             dead=self._exit_reason, interval=0.05)
        return self

    def _answers(self) -> bool:
        host, _, port = self.bootstrap_servers.split(",")[0].rpartition(":")
        return processes.port_open(int(port), host or LOOPBACK)

    def _exit_reason(self) -> str | None:
        if self.external or self._process is None or self._process.poll() is None:
            return None
        return f"it exited with code {self._process.returncode} (see {self.log_file})"

    def stop(self) -> None:
        self._close_producer()
        if self._process is not None:
            processes.terminate(self._process)
            self._process = None

    def kill(self) -> None:
        """Crash the embedded broker (its memory storage, topics and offsets are gone)."""
        self._close_producer()
        if self._process is not None:
            processes.kill(self._process)
            self._process = None

    def _close_producer(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=1)
            self._producer = None

    def _admin(self) -> KafkaAdminClient:
        try:
            return KafkaAdminClient(bootstrap_servers=self.bootstrap_servers,
                                    request_timeout_ms=10_000)
        except KafkaError as error:
            raise LabError(
                f"Kafka at {self.bootstrap_servers} is not reachable ({error}): start it, or fix "
                "KAFKA_BOOTSTRAP_SERVERS."
            ) from None

    def create_topics(self, *names: str, partitions: int = 1) -> None:
        """Create the topics that do not exist yet."""
        admin = self._admin()
        try:
            missing = [n for n in names if n not in set(admin.list_topics())]
            for name in missing:  # one by one: a concurrent creator only costs us that one
                try:
                    admin.create_topics([NewTopic(name, partitions, 1)])
                except TopicAlreadyExistsError:
                    pass
        finally:
            admin.close()

    def topics(self) -> list[str]:
        admin = self._admin()
        try:
            return sorted(admin.list_topics())
        finally:
            admin.close()

    def committed_offsets(self, group: str, topic: str) -> dict[int, int]:
        """The offsets consumer ``group`` committed for ``topic``: partition → next offset."""
        admin = self._admin()
        try:
            committed = admin.list_group_offsets(group).get(group, {})
        finally:
            admin.close()
        return {tp.partition: at.offset for tp, at in committed.items()
                if tp.topic == topic and at.offset >= 0}

    def commit_offsets(self, group: str, topic: str, offsets: dict[int, int]) -> None:
        """Set where consumer ``group`` (one with no consumer running) resumes ``topic``."""
        admin = self._admin()
        try:
            admin.alter_group_offsets(group, {TopicPartition(topic, partition):
                                              OffsetAndMetadata(offset, "", -1)
                                              for partition, offset in offsets.items()})
        finally:
            admin.close()

    def produce(self, topic: str, key: str | bytes | None, value: Any) -> None:
        """Send one record and wait for the broker's ack; dicts/lists are sent as JSON.

        ``value`` may also be ``str`` or ``bytes``, sent as is (useful for poison records).
        """
        self.produce_many(topic, [(key, value)])

    def produce_many(self, topic: str, records: list[tuple[str | bytes | None, Any]]) -> None:
        """Send ``(key, value)`` records in order, then wait until the broker acked them all."""
        keys = [_key_bytes(key) for key, _ in records]  # all checked before any is sent
        producer = self._connected_producer()
        futures = [producer.send(topic, key=key, value=_encode(value))
                   for key, (_, value) in zip(keys, records, strict=True)]
        for future in futures:
            future.get(timeout=10)

    def _connected_producer(self) -> KafkaProducer:
        if self._producer is None:
            try:
                self._producer = KafkaProducer(bootstrap_servers=self.bootstrap_servers,
                                               acks="all", linger_ms=0)
            except KafkaError as error:
                raise LabError(
                    f"Cannot produce to Kafka at {self.bootstrap_servers} ({error}): is the "
                    "broker running?"
                ) from None
        return self._producer

    def __repr__(self) -> str:
        kind = "external" if self.external else "embedded"
        return f"KafkaBroker({kind}, {self.bootstrap_servers})"


#: The longest record key the lab sends (restate-server turns each key into an invocation key).
MAX_KEY_BYTES = 4096


def _key_bytes(key: str | bytes | None) -> bytes | None:
    """A record key as bytes, if restate-server can consume it: valid UTF-8 (a key that is not
    stalls its whole subscription partition, restatedev/restate#4682) and not too long."""
    if key is None:
        return None
    try:
        raw = key.encode() if isinstance(key, str) else bytes(key)
        raw.decode()
    except UnicodeError:
        raise LabError(f"The record key {key!r:.60} is not valid UTF-8: restate-server cannot "
                       "consume it (its subscription would stop at it); use a text key.") from None
    if len(raw) > MAX_KEY_BYTES:
        raise LabError(f"The record key is {len(raw):,} bytes, more than the {MAX_KEY_BYTES:,} "
                       "this lab sends; use a shorter key (an id, not the data).")
    return raw


def _encode(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    return json.dumps(value).encode()
