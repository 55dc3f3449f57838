"""A chaos soak: sagas and Kafka posts kept in flight while faults fire at random, then a check
of every promise on the ledgers and on Restate's records.

    python -m restate_tutorial soak --seconds 300 [--seed 42] [--nodes 3]

The fault plan and the workload come from one seeded random generator per thread, so a seed
replays the same plan (the timing of a machine is never the same twice: the faults land on
other steps). The invariants:

- every saga ended as its card says (declined: 402; else a result), none left running;
- one charge per accepted trip and none per declined one; no payment key charged twice;
- every reservation confirmed xor cancelled, exactly once, as its trip's card says;
- every post created once and in its user's feed once, in the order it was produced — except
  records the in-memory broker lost when it crashed (they may be missing, never doubled);
- with ``transfers`` (``--transfers``): money moved between accounts in PostgreSQL meanwhile,
  each transfer applied once or refused, every balance exact, the total kept;
- no invocation left unfinished.

``--upgrade 1.6.2 1.7.12`` replaces the random faults by rolling upgrades and rollbacks of
every node (one at a time, each stopped and started on the other version), under the same
workload and the same invariants.
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from .lab import IngressError, Lab, LabError, RestateCluster, wait_until
from .patterns import accounts, event_transactions, sagas
from .scenarios import GOOD_CARD, booking, outcome_of_transfers
from .simulated import social, travel

TOPIC = "social-media-posts"
FAULTS = ["restate-server SIGKILL", "restate-server SIGSTOP", "service host crash",
          "broker restart"]
SAGA_CALLS = [(travel.flights, "reserve"), (travel.car_rentals, "reserve"),
              (travel.flights, "confirm"), (travel.car_rentals, "confirm"),
              (travel.flights, "cancel"), (travel.car_rentals, "cancel"),
              (travel.payments, "charge"), (travel.payments, "refund")]


@dataclass
class Post:
    user: str
    content: str
    produced_at: float
    uncertain: bool = False  # the produce call failed: the record may or may not exist


@dataclass
class SoakReport:
    seed: int
    seconds: float
    faults: Counter[str] = field(default_factory=Counter)
    sagas: Counter[str] = field(default_factory=Counter)
    posts: Counter[str] = field(default_factory=Counter)
    transfers: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"chaos soak · seed {self.seed} · {self.seconds:g} s of faults",
                 f"  faults:     {dict(self.faults)}",
                 f"  sagas:      {dict(self.sagas)}",
                 f"  posts:      {dict(self.posts)}",
                 *([f"  transfers:  {dict(self.transfers)}"] if self.transfers else []),
                 f"  violations: {len(self.violations)}"]
        lines += [f"    - {v}" for v in self.violations]
        return "\n".join(lines)


class Soak:
    """``with Soak(seed) as soak: soak.run(seconds); print(soak.check())``."""

    def __init__(self, seed: int, nodes: int = 1, users: int = 6,
                 poll_interval: float = 0.2, transfers: bool = False,
                 upgrade: tuple[str, str] | None = None) -> None:
        self.seed = seed
        self.users = [f"soak-user{i}-{seed}" for i in range(users)]
        #: (from, to): instead of faults at random, the nodes are upgraded one at a time to
        #: ``to`` and rolled back to ``from``, again and again, under the same workload.
        self.upgrade = upgrade
        self.lab = Lab([sagas.flights, sagas.car_rentals, sagas.booking_workflow,
                        event_transactions.user_feed, *([accounts.accounts] if transfers else [])],
                       nodes=nodes, **({"restate_version": upgrade[0]} if upgrade else {}))
        #: Accounts of 10,000 cents (with ``transfers``), and each transfer sent to them.
        self.accounts = [f"soak-{seed}-{uuid.uuid4().hex[:4]}-{i}" for i in range(6)
                         ] if transfers else []
        self.transfers: list[tuple[dict[str, Any], str]] = []
        self.poll_interval = timedelta(seconds=poll_interval)
        self.trips: dict[str, tuple[bool, str]] = {}  # trip id → (declined?, invocation id)
        self.posts: list[Post] = []
        self.broker_crashes: list[float] = []
        self.report = SoakReport(seed, 0.0)
        self._stop = threading.Event()
        self._guard = threading.Lock()

    def __enter__(self) -> Soak:
        travel.reset()
        social.reset()
        self._interval_before = event_transactions.poll_interval
        event_transactions.poll_interval = self.poll_interval
        self.lab.start()
        self.lab.subscribe(TOPIC, "UserFeed", "ProcessPost")
        for user in self.users:
            social.moderation.script(user, 2)
        for account in self.accounts:
            self.lab.ingress.call("Accounts", "Open", {"account": account,
                                                       "balance_cents": 10_000})
        return self

    def __exit__(self, *exc: object) -> None:
        self.lab.stop()
        event_transactions.poll_interval = self._interval_before

    # -- the run -------------------------------------------------------------------------

    def run(self, seconds: float) -> SoakReport:
        """Workload and faults for ``seconds``, then everything brought back up and settled."""
        self.report.seconds += seconds
        self._stop.clear()
        workers = [threading.Thread(target=work, args=(random.Random(f"{self.seed}:{name}"),),
                                    name=f"soak-{name}", daemon=True)
                   for name, work in (("sagas", self._book), ("posts", self._post),
                                      ("faults", self._roll if self.upgrade else self._faults),
                                      *([("transfers", self._transfer)] if self.accounts else []))]
        for worker in workers:
            worker.start()
        time.sleep(seconds)  # the soak's length: the work happens in the threads
        self._stop.set()
        for worker in workers:
            worker.join()
        self._bring_up()
        self._settle()
        return self.report

    def _book(self, rng: random.Random) -> None:
        while not self._stop.is_set():
            declined = rng.random() < 0.3
            api, call = rng.choice(SAGA_CALLS)
            if rng.random() < 0.3:
                api.failures.fail_next(call, rng.randint(1, 2))
            elif rng.random() < 0.2:
                api.failures.lose_answer_next(call)
            trip = f"soak-{self.seed}-{uuid.UUID(int=rng.getrandbits(128)).hex[:10]}"
            body = booking(travel.DECLINED_TEST_CARD if declined else GOOD_CARD)
            # A workflow runs once per id: a send retried (the server was down) is the same run.
            invocation = self._retry(lambda body=body, trip=trip: self.lab.ingress.send(
                "BookingWorkflow", "Run", body, key=trip))
            if invocation:
                with self._guard:
                    self.trips[trip] = (declined, invocation)
            self._stop.wait(rng.uniform(0.05, 0.3))

    def _post(self, rng: random.Random) -> None:
        sequence = 0
        while not self._stop.is_set():
            user = rng.choice(self.users)
            sequence += 1
            post = Post(user, f"post {sequence} of {user}", time.time())
            try:  # no retry: a resent record would be a second record, not a redelivery
                self.lab.broker.produce(TOPIC, user, {"content": post.content, "metadata": "m"})
            except Exception:  # noqa: BLE001 — the broker is down or restarting
                post.uncertain = True
            with self._guard:
                self.posts.append(post)
            self._stop.wait(rng.uniform(0.02, 0.15))

    def _transfer(self, rng: random.Random) -> None:
        while not self._stop.is_set():
            source, target = rng.sample(self.accounts, 2)
            body = {"transfer_id": f"soak-{self.seed}-{uuid.UUID(int=rng.getrandbits(128))}",
                    "from": source, "to": target, "amount_cents": rng.randint(1, 2_000)}
            # Sent again while the lab is down: the same transfer_id, applied once all the same.
            invocation = self._retry(lambda body=body: self.lab.ingress.send(
                "Accounts", "Transfer", body))
            if invocation:
                with self._guard:
                    self.transfers.append((body, invocation))
            self._stop.wait(rng.uniform(0.02, 0.1))

    def _faults(self, rng: random.Random) -> None:
        while not self._stop.wait(rng.uniform(1.5, 4.0)):
            fault = rng.choice(FAULTS)
            self.report.faults[fault] += 1
            try:
                self._fire(fault, rng)
            except LabError as error:  # reported, not fatal: the soak goes on
                self.report.violations.append(f"fault {fault!r} could not be undone: {error}")

    def _roll(self, rng: random.Random) -> None:
        """Upgrade every node, one at a time, then roll them back the same way — until the end.
        Each node is stopped, started on the other version, and the next waits until posts are
        read from Kafka again (as an operator waits for a node to be fully back: a stop while
        its Kafka consumer is still joining its group stalls that subscription — seen with the
        embedded broker)."""
        assert self.upgrade is not None
        server = self.lab.server
        nodes = server.nodes if isinstance(server, RestateCluster) else [server]
        for version in itertools.cycle(reversed(self.upgrade)):
            for node in nodes:
                if not self._posts_read_again(60) or self._stop.wait(rng.uniform(0.5, 1.5)):
                    return
                self.report.faults[f"{node.node_name} → {version}"] += 1
                try:
                    node.restart(timeout=90, version=version, graceful=True)
                except LabError as error:
                    self.report.violations.append(f"fault {node.node_name} → {version} "
                                                  f"could not be done: {error}")

    def _posts_read_again(self, seconds: float) -> bool:
        """Whether a post produced from now on is created within ``seconds`` (false when the
        soak ends first); a violation if none is."""
        now, deadline = time.time(), time.monotonic() + seconds

        def read() -> bool:
            with self._guard:
                after = {p.content for p in self.posts if p.produced_at > now}
            return any(e["content"] in after
                       for e in social.social_media.ledger.entries("create_post"))

        while not read():
            if self._stop.wait(0.1):
                return False
            if time.monotonic() > deadline:
                self.report.violations.append(f"fault (upgrade): no post read from Kafka for"
                                              f" {seconds:g} s after the last restart")
                return False
        return True

    def _fire(self, fault: str, rng: random.Random) -> None:
        server = self.lab.server
        node = (rng.choice(server.nodes) if isinstance(server, RestateCluster) else server)
        if fault == "restate-server SIGKILL":
            node.kill()
            node.start(timeout=90)
        elif fault == "restate-server SIGSTOP":
            os.kill(node.pid, signal.SIGSTOP)  # a frozen VM, a long GC pause
            time.sleep(rng.uniform(0.5, 3.0))
            os.kill(node.pid, signal.SIGCONT)
        elif fault == "service host crash":
            self.lab.host.restart()
        elif fault == "broker restart":
            self.lab.restart_broker()
            self.broker_crashes.append(time.time())  # records produced before may be lost

    def _bring_up(self) -> None:
        self.lab.server.start(timeout=90)
        self.lab.host.start()
        self.lab.broker.start()

    def _retry(self, action: Any, seconds: float = 60.0) -> Any:
        """``action()``, retried while the lab is down (a fault is being undone)."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                return action()
            except (LabError, IngressError) as error:
                if isinstance(error, IngressError) and error.status < 500:
                    raise
                if time.monotonic() > deadline:
                    return None
                time.sleep(0.2)

    def _settle(self) -> None:
        """Wait until Restate has read every record it is sure to get and has nothing left
        running (every saga and post finished). Records still in Kafka have no invocation yet,
        so "nothing running" alone could be checked too early."""
        query = "SELECT count(*) AS n FROM sys_invocation WHERE status <> 'completed'"

        def idle() -> bool:
            return (self._retry(lambda: self.lab.admin.sql(query)) or [{"n": 1}])[0]["n"] == 0

        last_crash = max(self.broker_crashes, default=0.0)
        due = {p.content for p in self.posts if not p.uncertain and p.produced_at > last_crash}

        def all_read() -> bool:
            created = {e["content"] for e in social.social_media.ledger.entries("create_post")}
            return due <= created

        try:  # a record that never arrives is reported by check(), not here
            wait_until(all_read, 120, "every record produced to be read")
        except LabError:
            pass
        try:
            wait_until(idle, 300, "every invocation of the soak to finish", interval=0.5)
        except LabError:
            left = self.lab.admin.sql("SELECT id, target, status, last_failure FROM "
                                      "sys_invocation WHERE status <> 'completed' LIMIT 5")
            raise LabError(f"The soak (seed {self.report.seed}) left invocations unfinished "
                           f"after 300 s, e.g. {left}") from None

    # -- the check -----------------------------------------------------------------------

    def check(self) -> SoakReport:
        """Check every invariant; the report lists what was violated (expected: nothing)."""
        self.report.sagas.clear()
        self.report.posts.clear()
        violations = [v for v in self.report.violations if v.startswith("fault ")]
        violations += self._check_sagas() + self._check_posts() + self._check_transfers()
        rows = self.lab.admin.sql("SELECT id, target, status FROM sys_invocation"
                                  " WHERE status <> 'completed'")
        violations += [f"invocation {r['id']} ({r['target']}) left {r['status']}" for r in rows]
        self.report.violations = violations
        return self.report

    def _check_sagas(self) -> list[str]:
        violations = []
        accepted_keys = []
        for trip, (declined, invocation) in self.trips.items():
            try:
                result = self.lab.ingress.attach(invocation, timeout=60)
                outcome = "accepted"
                accepted_keys.append(result["payment"])
            except IngressError as error:
                outcome = "declined" if error.status == 402 else f"failed ({error})"
            self.report.sagas[outcome] += 1
            if outcome != ("declined" if declined else "accepted"):
                violations.append(f"trip {trip} ({'declined' if declined else 'good'} card) "
                                  f"ended {outcome}")
        charges = Counter(e["payment_id"] for e in travel.payments.ledger.entries("charge"))
        violations += [f"payment {key} charged {n} times" for key, n in charges.items() if n > 1]
        violations += [f"accepted trip's payment {key} not charged" for key in accepted_keys
                       if charges[key] != 1]
        accepted = sum(not declined for declined, _ in self.trips.values())
        if sum(charges.values()) != accepted:
            violations.append(f"{sum(charges.values())} charges for {accepted} accepted trips")
        for api in (travel.flights, travel.car_rentals):
            for reservation in {e["reservation_id"] for e in api.ledger.entries("reserve")}:
                effects = [a for a in api.ledger.history(reservation_id=reservation)
                           if a in ("confirm", "cancel [cancelled]")]
                if len(effects) != 1:
                    violations.append(f"{api.ledger.system} reservation {reservation}: "
                                      f"{effects or 'neither confirmed nor cancelled'}")
            confirmed = api.ledger.count("confirm")
            if confirmed != accepted:
                violations.append(f"{api.ledger.system}: {confirmed} confirmations for "
                                  f"{accepted} accepted trips")
        return violations

    def _check_posts(self) -> list[str]:
        violations = []
        created = social.social_media.ledger.entries("create_post")
        by_content = Counter(e["content"] for e in created)
        last_crash = max(self.broker_crashes, default=0.0)  # when the last restart ended
        for post in self.posts:
            n = by_content[post.content]
            self.report.posts["created" if n else "lost" if not post.uncertain else
                              "uncertain, not created"] += 1
            if n > 1:
                violations.append(f"{post.content!r} created {n} times")
            elif n == 0 and not post.uncertain and post.produced_at > last_crash:
                violations.append(f"{post.content!r} never created (no broker crash after it)")
        ids = {e["post_id"]: e["content"] for e in created}
        produced = {post.content: i for i, post in enumerate(self.posts)}
        for user in self.users:
            feed = social.social_media.feed(user)
            if len(feed) != len(set(feed)):
                violations.append(f"a post is twice in {user}'s feed")
            order = [produced[ids[post_id]] for post_id in feed]
            if order != sorted(order):
                violations.append(f"{user}'s feed is out of order: {order}")
            mine = [e["post_id"] for e in created if e["user_id"] == user]
            if sorted(mine) != sorted(feed):
                violations.append(f"{user}: {len(mine)} posts created, {len(feed)} in the feed")
        return violations


    def _check_transfers(self) -> list[str]:
        if not self.accounts:
            return []
        from . import database

        expected, applied, self.report.transfers = outcome_of_transfers(
            self.lab, self.transfers, dict.fromkeys(self.accounts, 10_000), 60)
        table = accounts.read_balances(self.accounts)
        with database.connect() as conn:
            rows = {row[0] for row in conn.execute(
                "SELECT transfer_id FROM transfers WHERE transfer_id LIKE %s",
                (f"soak-{self.seed}-%",))}
        violations = [f"account {a}: {table.get(a)} cents, expected {cents}"
                      for a, cents in expected.items() if table.get(a) != cents]
        if rows != applied:
            violations.append(f"{len(rows)} transfers in the table, {len(applied)} answered "
                              "applied")
        return violations


def soak(seconds: float, seed: int | None = None, nodes: int = 1,
         transfers: bool = False, upgrade: tuple[str, str] | None = None) -> SoakReport:
    """Run a soak and print its report (the seed first, to replay the plan)."""
    seed = seed if seed is not None else random.randrange(1_000_000)
    print(f"chaos soak: seed {seed} (replay with --seed {seed})", flush=True)
    with Soak(seed, nodes=nodes, transfers=transfers, upgrade=upgrade) as running:
        running.run(seconds)
        report = running.check()
    print(report, flush=True)
    return report
