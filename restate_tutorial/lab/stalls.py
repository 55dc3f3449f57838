"""Kafka records restate-server cannot consume: found in its log, said in one line, skipped.

restate-server 1.7 retries a record it cannot turn into an invocation (a key that is not valid
UTF-8: restatedev/restate#4682) about every 1.5 s, forever, and every later record of that
partition waits behind it. Only its own log file says so. A :class:`StallWatch` reads the log
as it grows and logs one WARNING per stuck record, naming where it is and the command that
skips it: :func:`skip_record`.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .admin import AdminClient
from .errors import LabError
from .kafka import KafkaBroker

log = logging.getLogger("restate_tutorial.lab")

_STUCK = re.compile(r"Error processing message subscription (?P<subscription>\S+) topic "
                    r"(?P<topic>\S+) partition (?P<partition>\d+) offset (?P<offset>\d+): "
                    r"(?P<reason>[^\n]*)")


@dataclass(frozen=True)
class StuckRecord:
    subscription: str
    topic: str
    partition: int
    offset: int
    reason: str

    def __str__(self) -> str:
        return (f"Kafka record stuck: subscription {self.subscription} cannot consume topic "
                f"{self.topic} partition {self.partition} offset {self.offset} ({self.reason}); "
                "every later record of that partition waits behind it (restate-server 1.7 "
                "retries it forever: restatedev/restate#4682)")


class StallWatch:
    """Reads ``log_files()`` every ``interval`` seconds, from where it stopped; each stuck
    record it finds is logged once (WARNING) and kept in :attr:`stuck`."""

    def __init__(self, log_files: Callable[[], list[Path]], interval: float = 1.0,
                 skip_command: Callable[[StuckRecord], str] | None = None) -> None:
        self.log_files = log_files
        self.skip_command = skip_command
        self.interval = interval
        self.stuck: list[StuckRecord] = []
        self._read: dict[Path, int] = {}  # file → bytes already read
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> StallWatch:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._watch, name="stall-watch", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            self.check()

    def check(self) -> list[StuckRecord]:
        """Read what the logs added since the last check; returns the stuck records new in it."""
        with self._lock:
            new: list[StuckRecord] = []
            for path in self.log_files():
                try:
                    with path.open("rb") as file:
                        file.seek(self._read.get(path, 0))
                        data = file.read()
                except OSError:
                    continue
                complete = data[:data.rfind(b"\n") + 1]  # a line being written: next time
                self._read[path] = self._read.get(path, 0) + len(complete)
                for match in _STUCK.finditer(complete.decode(errors="replace")):
                    record = StuckRecord(match["subscription"], match["topic"],
                                         int(match["partition"]), int(match["offset"]),
                                         match["reason"])
                    if record not in self.stuck and record not in new:
                        new.append(record)
            for record in new:
                self.stuck.append(record)
                skip = (f"; to skip that record (it is lost, nothing else is): "
                        f"`{self.skip_command(record)}`") if self.skip_command else ""
                log.warning(f"{record}{skip}")
            return new


def skip_record(admin: AdminClient, broker: KafkaBroker, subscription_id: str, partition: int,
                offset: int) -> dict[str, Any]:
    """Move a subscription past one record: it is deleted and created again with the same
    source, sink and options but a consumer group of its own, which resumes the stuck partition
    at ``offset`` + 1 and every other partition where the old group had committed. Nothing
    before that record is processed again. Returns the new subscription.

    (A new group, because restate-server 1.7.12 may keep retrying the deleted subscription's
    consumer in the old one for a while: harmless, since it is stuck on that same record.)"""
    found = [s for s in admin.subscriptions() if s["id"] == subscription_id]
    if not found:
        raise LabError(f"There is no subscription {subscription_id}: list them with "
                       f"`curl {admin.url}/subscriptions`.")
    subscription = found[0]
    cluster, topic = subscription["source"].removeprefix("kafka://").split("/", 1)
    service, handler = subscription["sink"].removeprefix("service://").split("/", 1)
    options = dict(subscription.get("options") or {})
    old_group = options.get("group.id", subscription_id)
    at = broker.committed_offsets(old_group, topic).get(partition, 0)
    if at > offset:
        raise LabError(f"Offset {offset} of {topic} partition {partition} is consumed already "
                       f"(the subscription is at offset {at}): nothing to skip.")
    admin.unsubscribe(subscription_id)
    committed = broker.committed_offsets(old_group, topic)  # its consumer commits as it stops
    group = f"{subscription_id}-after-{partition}-{offset}"
    broker.commit_offsets(group, topic, {**committed, partition: offset + 1})
    return admin.subscribe(topic, service, handler, cluster, {**options, "group.id": group})
