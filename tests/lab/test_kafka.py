"""Kafka records reach handlers through a Restate subscription; subscriptions are idempotent."""

from __future__ import annotations

import fcntl
import os
import re
import shlex
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from kafka import KafkaProducer

from restate_tutorial.lab import Lab, LabError, wait_until

from ..services import inbox


def test_record_reaches_the_handler_keyed_by_the_record_key(lab: Lab) -> None:
    topic = f"inbox-{uuid.uuid4().hex[:8]}"
    lab.subscribe(topic, "Inbox", "add")
    lab.broker.produce(topic, "alice", {"text": "hi"})
    lab.broker.produce(topic, "alice", {"text": "again"})
    lab.broker.produce(topic, "bob", {"text": "hello"})

    def delivered() -> bool:
        return len(lab.ingress.call("Inbox", "messages", key="alice")) == 2

    wait_until(delivered, 30, "two records for alice")
    assert lab.ingress.call("Inbox", "messages", key="alice") == [{"text": "hi"},
                                                                  {"text": "again"}]
    wait_until(lambda: lab.ingress.call("Inbox", "messages", key="bob") == [{"text": "hello"}],
               30, "bob's record")
    via = {row["via"] for row in lab.admin.sql(
        "SELECT CASE WHEN invoked_by_subscription_id IS NULL THEN 'other' ELSE 'kafka' END AS via"
        " FROM sys_invocation WHERE target_handler_name = 'add'"
        " AND target_service_key IN ('alice', 'bob')")}
    assert via == {"kafka"}


def test_subscribing_twice_creates_one_subscription(lab: Lab) -> None:
    topic = f"twice-{uuid.uuid4().hex[:8]}"
    first = lab.subscribe(topic, "Inbox", "add")
    second = lab.subscribe(topic, "Inbox", "add")
    assert first["id"] == second["id"]
    same = [s for s in lab.admin.subscriptions() if s["source"].endswith(f"/{topic}")]
    assert len(same) == 1
    assert topic in lab.broker.topics()


@pytest.mark.parametrize(("key", "complaint"), [
    (b"\xff", "is not valid UTF-8"),
    ("\ud800", "is not valid UTF-8"),
    ("k" * 100 * 1024, "more than the 4,096 this lab sends"),
])
def test_the_lab_refuses_a_key_restate_cannot_consume(
        lab: Lab, key: str | bytes, complaint: str) -> None:
    """A non-UTF-8 key would stall the whole subscription partition (restate-server retries
    it forever); the lab's producer refuses it — and the batch it came in — with one sentence."""
    topic = f"keys-{uuid.uuid4().hex[:8]}"
    lab.broker.create_topics(topic)
    with pytest.raises(LabError, match=complaint):
        lab.broker.produce_many(topic, [("fine", {"n": 1}), (key, {"n": 2})])
    assert lab.broker.produce(topic, b"utf-8 bytes \xc3\xa9", {"n": 3}) is None  # valid: sent


def test_a_record_restate_cannot_consume_is_one_warning_line_whose_command_skips_it(
        caplog: pytest.LogCaptureFixture) -> None:
    """Sent by another client, a key that is not UTF-8 stops the partition in restate-server
    (it retries that record forever, saying so only in its own log): the lab notices within
    seconds and logs one WARNING naming the subscription, topic, partition and offset, and the
    command that skips the record. Run as printed, it does: the next record is processed, and
    none before it again."""
    with Lab([inbox]) as own:
        topic = f"stuck-{uuid.uuid4().hex[:8]}"
        subscription = own.subscribe(topic, "Inbox", "add")
        other_client = KafkaProducer(bootstrap_servers=own.broker.bootstrap_servers)
        for key, text in ((b"ada", "before"), (b"\xff", "stuck"), (b"ada", "after")):
            other_client.send(topic, key=key, value=f'{{"text": "{text}"}}'.encode()).get(10)
        other_client.close()
        with caplog.at_level("WARNING", logger="restate_tutorial.lab"):
            wait_until(lambda: bool(own.stalls.stuck), 30, "the stuck record to be noticed")
            wait_until(lambda: own.server.logs().count("partition 0 offset 1") >= 3, 30,
                       "restate-server to retry it twice more")
            own.stalls.check()
        [stuck] = own.stalls.stuck
        assert (stuck.subscription, stuck.topic, stuck.partition, stuck.offset) == (
            subscription["id"], topic, 0, 1)
        assert "must be valid UTF-8" in stuck.reason
        [warning] = [r.getMessage() for r in caplog.records
                     if "Kafka record stuck" in r.getMessage()]  # once, however often retried
        assert warning.startswith(str(stuck))
        command = re.fullmatch(r".*`(\S+) -m restate_tutorial (skip-record .*)`", warning)
        assert command is not None, warning
        skip = [sys.executable, "-m", "restate_tutorial", *shlex.split(command[2])]
        done = subprocess.run(skip, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and done.stdout.startswith(
            "Skipped partition 0 offset 1: subscription sub_"), done
        wait_until(lambda: len(own.ingress.call("Inbox", "messages", key="ada")) >= 2, 30,
                   "the record after the skipped one")
        assert own.ingress.call("Inbox", "messages", key="ada") == [{"text": "before"},
                                                                     {"text": "after"}]
        [now] = own.admin.subscriptions()
        assert now["id"] != subscription["id"] and now["sink"] == subscription["sink"]
        own.broker.produce(topic, "ada", {"text": "later"})  # it goes on as before
        wait_until(lambda: len(own.ingress.call("Inbox", "messages", key="ada")) >= 3, 30,
                   "a later record")
        assert [m["text"] for m in own.ingress.call("Inbox", "messages", key="ada")] == [
            "before", "after", "later"]
        again = subprocess.run(skip, capture_output=True, text=True, timeout=60)
        assert again.returncode == 2 and again.stderr.startswith(
            "error: There is no subscription sub_"), again  # it is gone: said in one line



def test_a_worker_resolving_the_broker_waits_for_one_copying_it(tmp_path: Path) -> None:
    """Test workers on a fresh machine resolve the broker at once: one copying it out of the
    wheel could replace the file after another made it executable, and the other then ran a
    file it may not execute (seen: PermissionError in a whole worker's tests; 1 in 16 processes
    started at once). While one holds the copy, another waits, then gets a broker it can run."""
    (tmp_path / ".calfkit").mkdir()
    with (tmp_path / ".calfkit" / "bin.lock").open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # a copy in progress
        worker = subprocess.Popen(
            [sys.executable, "-c", "import subprocess\n"
             "from restate_tutorial.lab.binaries import tansu_binary\n"
             "print(subprocess.run([tansu_binary(), '--help'], capture_output=True).returncode)"],
            text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env={**os.environ, "HOME": str(tmp_path)})
        with pytest.raises(subprocess.TimeoutExpired):
            worker.wait(timeout=1)
        assert not (tmp_path / ".calfkit" / "bin").exists()
    assert worker.communicate(timeout=60)[0].strip() == "0"
