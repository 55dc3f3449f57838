"""A short chaos soak (the README's "make chaos" runs the same for minutes), transfers in
PostgreSQL included: every promise holds under random faults, and the checker is shown to
catch a planted violation."""

from __future__ import annotations

from restate_tutorial import database
from restate_tutorial.lab.binaries import RESTATE_VERSION
from restate_tutorial.simulated import social, travel
from restate_tutorial.soak import FAULTS, Soak

SEED = 2028  # its plan fires every kind of fault within the first 20 s


def test_a_short_chaos_soak_keeps_every_promise_and_the_checker_bites() -> None:
    with Soak(SEED, transfers=True) as soak:
        soak.run(24)
        report = soak.check()
        print(report)
        assert set(report.faults) == set(FAULTS), report.faults
        assert report.sagas["accepted"] > 0 and report.sagas["declined"] > 0
        assert report.posts["created"] > 0
        assert report.transfers["applied"] > 0
        assert report.violations == []

        # Plant violations: a second charge of an accepted trip, a post created twice.
        charged = travel.payments.ledger.entries("charge")[0]
        travel.payments.ledger.record("charge", payment_id=charged["payment_id"])
        post = social.social_media.ledger.entries("create_post")[0]
        social.social_media.ledger.record("create_post", **{k: v for k, v in post.items()
                                                            if k not in ("at", "system",
                                                                         "action")})
        with database.connect() as conn:  # money out of thin air
            conn.execute("UPDATE accounts SET balance_cents = balance_cents + 1 WHERE id = %s",
                         (soak.accounts[0],))
        planted = soak.check().violations
        assert f"payment {charged['payment_id']} charged 2 times" in planted
        assert f"{post['content']!r} created 2 times" in planted
        assert any(v.startswith(f"account {soak.accounts[0]}: ") for v in planted), planted


def test_a_soak_that_upgrades_and_rolls_back_keeps_every_promise() -> None:
    """soak --upgrade: the node upgraded from the previous minor to the pinned version and
    rolled back, again and again, under sagas and Kafka posts: the same invariants hold."""
    with Soak(SEED, upgrade=("1.6.2", RESTATE_VERSION)) as soak:
        soak.run(10)
        report = soak.check()
        print(report)
        assert report.faults[f"lab → {RESTATE_VERSION}"] >= 1, report.faults
        assert report.faults["lab → 1.6.2"] >= 1, report.faults  # a rollback too
        assert report.sagas["accepted"] > 0 and report.posts["created"] > 0
        assert report.violations == []
        assert soak.lab.admin.version() in ("1.6.2", RESTATE_VERSION)
