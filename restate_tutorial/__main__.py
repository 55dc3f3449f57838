"""Headless lab: ``python -m restate_tutorial up [--no-subscribe]``, ``… demo <scenario>``,
``… soak`` and ``… skip-record <subscription> <partition> <offset>``.

This module and the notebooks are the only places that know every part of the tutorial.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import uuid
from collections.abc import Callable

from . import soak, views
from .lab import AdminClient, IngressError, KafkaBroker, Lab, LabError, LabPorts, wait_until
from .lab.binaries import RESTATE_VERSION, install_tools
from .lab.stalls import skip_record
from .logbook import OneLineRetries
from .patterns import approvals
from .patterns.payloads import clip
from .scenarios import (
    GOOD_BOOKING,
    GOOD_CARD,
    SEED_BOOKING,
    SEED_POSTS,
    SERVICES,
    SUBSCRIPTIONS,
    searches_at_once,
    serve_scripted_model,
    transfers_through_crashes,
)
from .simulated import bank, fares, mailer, quotes, social, travel


def _log_to_terminal() -> None:
    """Handler logs (seed style: ``2025/01/06 16:16:02 INFO Flight reserved: …``) to stderr."""
    terminal = logging.StreamHandler()
    terminal.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s",
                                            "%Y/%m/%d %H:%M:%S"))
    terminal.addFilter(OneLineRetries())
    for name in ("restate_tutorial", "restate"):  # ours, and the SDK's (failed attempts)
        logging.getLogger(name).addHandler(terminal)


def up(no_subscribe: bool, free_ports: bool = False, nodes: int = 1) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def interrupt(*_: object) -> None:
        stop.set()  # remembered, even if a library catches the KeyboardInterrupt (kafka-python)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    topics = sorted({topic for topic, _, _ in SUBSCRIPTIONS})
    ports = LabPorts.free(nodes) if free_ports else LabPorts.seed(nodes)
    model_url = serve_scripted_model()
    with Lab(_every_service(), ports=ports, topics=topics) as lab:
        if not no_subscribe:
            for topic, service, handler in SUBSCRIPTIONS:
                lab.subscribe(topic, service, handler)
        bank.connect(lab.server.ingress_url)  # the simulated bank answers 3-D Secure there
        # Every message to a person, one line each: an approver's holds the curl that decides.
        mailer.forward(lambda to, subject, body: print(
            f"✉ to {clip(to)}: {clip(subject)} — "
            f"{clip(body.replace('localhost:8080', lab.server.ingress_url), 400)}", flush=True))
        print(lab.ready_line(), "· model", model_url, "· Ctrl-C stops", flush=True)
        print("Private (only Restate and other handlers may call them):",
              ", ".join(lab.admin.private_handlers()), flush=True)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
        print("Stopping the lab…", flush=True)


def _every_service() -> list[object]:
    """SERVICES, the agent of notebook 10 and Accounts, whose PostgreSQL make up always runs
    (imported here only: the Agents SDK takes a second or two to import, which nothing else
    needs to wait for)."""
    from .patterns import accounts, agent

    return [*SERVICES, *agent.services, accounts.accounts]


def skip(subscription: str, partition: int, offset: int, admin_url: str, kafka: str) -> None:
    admin = AdminClient(admin_url)
    try:
        new = skip_record(admin, KafkaBroker(bootstrap_servers=kafka), subscription, partition,
                          offset)
    finally:
        admin.close()
    print(f"Skipped partition {partition} offset {offset}: subscription {new['id']} "
          f"({new['source']} → {new['sink']}) replaces {subscription}, from the next record on.")


def demo_basics(lab: Lab) -> None:
    """A journaled step, a durable sleep, and a crash of restate-server in the middle."""
    invocation = lab.ingress.send("Greeter", "greet", {"name": "Ada", "delay_seconds": 2})
    lab.admin.wait_for_entry(invocation, "Command: Sleep")
    print(f"Sent Greeter/greet → {invocation}; crashing restate-server during the sleep…")
    lab.server.restart()
    print("Result after the restart:", lab.ingress.attach(invocation))
    print(views.journal(lab.admin, invocation))


def demo_sagas(lab: Lab) -> None:
    """The seed's booking: flight and car reserved, payment declined, everything undone."""
    print(f"POST {lab.server.ingress_url}/BookingWorkflow/trip123/Run  (the seed's request)")
    invocation = lab.ingress.send("BookingWorkflow", "Run", SEED_BOOKING, key="trip123")
    try:
        lab.ingress.attach(invocation)
    except LabError as error:
        print(f"→ {error}")
    print(views.sequence(lab.admin, invocation))
    print(views.journal(lab.admin, invocation))


def demo_events(lab: Lab) -> None:
    """The seed's three posts: per-user order, users in parallel, durable sleeps between checks."""
    topic = "social-media-posts"
    lab.subscribe(topic, "UserFeed", "ProcessPost")
    social.moderation.script("userid1", 3)  # as in the seed: userid1 waits longer than userid2
    social.moderation.script("userid2", 2)
    before = social.social_media.ledger.count("update_feed")
    for key, post in SEED_POSTS:
        print(f"{key}:{json.dumps(post)}")
        lab.broker.produce(topic, key, post)
    wait_until(lambda: social.social_media.ledger.count("update_feed") >= before + 3,
               120, "three feed updates")
    print(views.timeline(lab.admin, "UserFeed"))


def demo_enrichment(lab: Lab) -> None:
    """Register package123 over HTTP, feed its locations from Kafka, read the enriched state."""
    topic = "package-location-updates"
    lab.subscribe(topic, "PackageTracker", "UpdateLocation")
    lab.ingress.call("PackageTracker", "RegisterPackage",
                     {"finalDestination": "Bridge 6, Amsterdam"}, key="package123")
    info = lab.ingress.get("PackageTracker", "getPackageInfo", key="package123")
    before = len(info["locations"])
    for update in ({"timestamp": "2024-10-10 13:00", "location": "Pinetree Road 5, Paris"},
                   {"timestamp": "2024-10-10 14:00", "location": "Mountain Road 155, Brussels"}):
        lab.broker.produce(topic, "package123", update)

    def enriched() -> bool:
        info = lab.ingress.get("PackageTracker", "getPackageInfo", key="package123")
        return len(info["locations"]) >= before + 2

    wait_until(enriched, 60, "both location updates for package123")
    print(json.dumps(lab.ingress.get("PackageTracker", "getPackageInfo", key="package123"),
                     indent=2))
    print(lab.cli("kv", "get", "PackageTracker", "package123"))


def demo_approvals(lab: Lab) -> None:
    """Three trips wait for their approver: one approved, one rejected, one left to expire."""
    trips = {"trip-approved": True, "trip-rejected": False, "trip-expired": None}
    for trip, verdict in trips.items():
        timeout = 3 if verdict is None else 600
        lab.ingress.send("TripApproval", "Run", {**GOOD_BOOKING, "approver": "Ada",
                                                 "timeout_seconds": timeout}, key=trip)
        wait_until(lambda trip=trip: any(m["subject"] == approvals.SUBJECT.format(trip)
                                         for m in mailer.inbox("Ada")), 30, f"{trip} to ask Ada")
        print(f"{trip}: waiting for Ada")
        if verdict is not None:  # Ada decides with the token her message carries
            token = approvals.token_for(trip, mailer.inbox("Ada"))
            print("→", lab.ingress.call("TripApproval", "Decide", {
                "approved": verdict, "token": token, "reason": "demo"}, key=trip))
    for trip in trips:
        invocation = lab.admin.wait_for_invocation("TripApproval", trip, handler="Run")
        outcome = lab.ingress.outcome(invocation, timeout=30)
        print(f"{trip}: [{outcome.status}] {outcome.message}"
              if isinstance(outcome, IngressError) else f"{trip}: {outcome}")
    print(views.invocations(lab.admin, service="TripApproval", handler="Run"))


def demo_time(lab: Lab) -> None:
    """A check-in reminder sent with a delay; a price watch that ticks until the fare drops."""
    booked = lab.ingress.call("TripReminders", "Book", {**GOOD_BOOKING, "remind_in_seconds": 2},
                              key="trip-time")
    print("trip-time booked; its reminder is scheduled:")
    print(views.scheduled(lab.admin))
    lab.admin.wait_until_ended(booked["reminder"]["invocation_id"])
    print("reminder sent:", mailer.inbox("traveller-trip-time"))
    fares.script("KL1234", [520, 505, 480])
    lab.ingress.call("PriceWatch", "Start", {"every_seconds": 1, "below": 500, "notify": "Ada"},
                     key="KL1234")
    wait_until(lambda: lab.ingress.get("PriceWatch", "Status", key="KL1234")["status"]
               == "alerted", 30, "the price alert")
    print("fares checked:", [e["fare"] for e in fares.ledger.entries("check")])
    print("alert:", mailer.inbox("Ada"))


def demo_fanout(lab: Lab) -> None:
    """A fare search asking five airlines at once; one too slow for the deadline; then six
    searches at once, without and with a limit per airline."""
    print("search:", lab.ingress.call("FareSearch", "Search", {"route": "AMS-LIS"}))
    quotes.script("TP", latency=10)
    print("TP slow, deadline 3 s:", lab.ingress.call("FareSearch", "Search",
                                                     {"route": "AMS-LIS", "deadline_seconds": 3}))
    print("six searches at once without a limit (each ERROR line: a 429, retried by Restate):")
    print(searches_at_once(lab, 6, "SearchUnlimited"))
    print("six searches at once, at most 2 quotes per airline (AirlinePermits):")
    print(searches_at_once(lab, 6, "Search"))


def demo_agent(lab: Lab) -> None:
    """A conversation with the travel agent: a search, then a booking the travel desk approves;
    the model's bill."""
    from .patterns import agent
    from .patterns.approvals import token_for, trip_to_approve
    from .simulated import model

    ask = {"text": "flights from AMS to LIS"}
    print("you:  ", ask["text"])
    print("agent:", lab.ingress.call("TravelAgent", "Message", ask, key="demo")["reply"])
    print("you:   book KL for Ada Lovelace   (€240: over the €200 rule)")
    turn = lab.ingress.send("TravelAgent", "Message", {"text": "book KL for Ada Lovelace"},
                            key="demo")
    wait_until(lambda: mailer.inbox(agent.APPROVER), 30, "the approval request")
    request = mailer.inbox(agent.APPROVER)[-1]
    print("travel desk's inbox:", request["subject"], "→ approved")
    trip = trip_to_approve(request["subject"])
    lab.ingress.call("TripApproval", "Decide", {"approved": True, "reason": "ok",
                                                "token": token_for(trip, [request])}, key=trip)
    print("agent:", lab.ingress.attach(turn)["reply"])
    print(views.sequence(lab.admin, turn))
    print("the model's bill:", model.bill())


def demo_accounts(lab: Lab) -> None:
    """Your own database: a transfer sent twice moves the money once; a crash of the service
    host after its COMMIT changes nothing; then 200 transfers through crashes."""
    from .patterns.accounts import script

    run = uuid.uuid4().hex[:4]
    for name, cents in ((f"alice-{run}", 10_000), (f"bob-{run}", 0)):
        print(lab.ingress.call("Accounts", "Open", {"account": name, "balance_cents": cents}))
    rent = {"transfer_id": f"rent-{run}", "from": f"alice-{run}", "to": f"bob-{run}",
            "amount_cents": 1_000}
    committed = script.hold_after_commit(rent["transfer_id"])
    invocation = lab.ingress.send("Accounts", "Transfer", rent)
    committed.wait(30)
    print("COMMIT done, step not journaled yet: crashing the service host…")
    lab.host.restart()
    print(lab.ingress.attach(invocation), "· sent again:",
          lab.ingress.call("Accounts", "Transfer", rent))
    print(views.database("PostgreSQL: accounts", "SELECT id, balance_cents FROM accounts"
                         " WHERE id LIKE %s ORDER BY id", f"%-{run}"))
    print(transfers_through_crashes(lab))


def demo_traces(lab: Lab) -> None:
    """Seeing inside: a checkout whose charge fails twice, as one trace (three attempts, two
    failed; the service's spans once each) and as Restate's record of why it was retried."""
    travel.payments.failures.fail_next("charge", 2)
    invocation = lab.ingress.send("Checkout", "Pay", {"order_id": f"o-{uuid.uuid4().hex[:4]}",
                                                      "card_number": GOOD_CARD, "amount": 100})
    print(lab.ingress.attach(invocation))
    if lab.traces is not None:
        print(views.trace(lab.traces, invocation))
    print(views.retries(lab.admin, invocation))


DEMOS: dict[str, Callable[[Lab], None]] = {
    "basics": demo_basics, "sagas": demo_sagas, "events": demo_events,
    "enrichment": demo_enrichment, "approvals": demo_approvals, "time": demo_time,
    "fanout": demo_fanout, "agent": demo_agent, "accounts": demo_accounts,
    "traces": demo_traces}


def demo(names: list[str]) -> None:
    serve_scripted_model()
    with Lab(_every_service(), traces="traces" in (names or DEMOS)) as lab:
        for name in names or list(DEMOS):
            print(f"== demo {name}")
            DEMOS[name](lab)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m restate_tutorial")
    commands = parser.add_subparsers(dest="command", required=True)
    up_parser = commands.add_parser("up", help="run the lab on the seed's ports until Ctrl-C")
    up_parser.add_argument("--no-subscribe", action="store_true",
                           help="leave the Kafka subscriptions to you, as in the seed")
    up_parser.add_argument("--nodes", type=int, default=1, choices=range(1, 10), metavar="N",
                           help="run a cluster of N restate-server nodes (node k: ingress "
                                "8080+k-1, admin 9070+k-1)")
    up_parser.add_argument("--free-ports", action="store_true",
                           help="pick free ports instead of the seed's (tests use this)")
    soak_parser = commands.add_parser("soak", help="a chaos soak: faults at random while sagas "
                                      "and posts run, then every promise checked")
    soak_parser.add_argument("--seconds", type=float, default=300)
    soak_parser.add_argument("--seed", type=int, help="replay the fault plan of a seed")
    soak_parser.add_argument("--nodes", type=int, default=1, choices=range(1, 10), metavar="N")
    soak_parser.add_argument("--transfers", action="store_true",
                             help="also move money between accounts in PostgreSQL")
    soak_parser.add_argument("--upgrade", nargs=2, metavar=("FROM", "TO"),
                             help="instead of random faults, upgrade every node from FROM to TO "
                             "and roll back, one node at a time, again and again")
    skip_parser = commands.add_parser(
        "skip-record", help="move a Kafka subscription past one record restate-server cannot "
        "consume (the lab's WARNING 'Kafka record stuck' gives the exact command)")
    skip_parser.add_argument("subscription")
    skip_parser.add_argument("partition", type=int)
    skip_parser.add_argument("offset", type=int)
    skip_parser.add_argument("--admin-url", default="http://127.0.0.1:9070",
                             help="Restate's admin API (default: make up's)")
    skip_parser.add_argument("--kafka", default="127.0.0.1:9092",
                             help="the Kafka bootstrap servers (default: make up's)")
    install_parser = commands.add_parser(
        "install-restate", help="install restate-server, the restate CLI and restatectl "
        "(pinned) from npm for this user: what an installed package (not a checkout) runs")
    install_parser.add_argument("--server-only", action="store_true",
                                help="restate-server alone (enough for the pytest plugin)")
    demo_parser = commands.add_parser("demo", help="run scenarios headless, printing logs")
    demo_parser.add_argument("scenarios", nargs="*", choices=[[], *DEMOS], metavar="scenario",
                             help=f"one of {', '.join(DEMOS)} (default: all)")
    args = parser.parse_args(argv)
    _log_to_terminal()
    try:
        if args.command == "up":
            up(args.no_subscribe, args.free_ports, args.nodes)
        elif args.command == "soak":
            return 1 if soak.soak(args.seconds, args.seed, args.nodes, args.transfers,
                                  tuple(args.upgrade) if args.upgrade else None
                                  ).violations else 0
        elif args.command == "skip-record":
            skip(args.subscription, args.partition, args.offset, args.admin_url, args.kafka)
        elif args.command == "install-restate":
            print(f"Installed restate-server {RESTATE_VERSION} in "
                  f"{install_tools(args.server_only)}")
        else:
            demo(args.scenarios)
    except LabError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C before the lab was up: it has stopped what it started
        print("Interrupted: the lab is stopped.", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
