"""Transfers per second into PostgreSQL: through Restate (`Accounts/Transfer`, one journaled step
per transfer) vs the same transaction called straight from Python, in one window.

Both apply the same function (`accounts.apply`: the token, the row locks, the debit and the
credit, one transaction) to the same database, with 8 clients at once over 16 accounts. The
direct side has no durability beyond PostgreSQL's: a crash after its COMMIT loses the answer.
"""

from __future__ import annotations

import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import report, sized  # noqa: E402
from restate_tutorial.lab import Lab  # noqa: E402
from restate_tutorial.patterns import accounts  # noqa: E402

CLIENTS = 8


def main() -> None:
    count = sized(800, 40)
    with Lab([accounts.accounts]) as lab:
        run = uuid.uuid4().hex[:6]
        names = [f"bench-{run}-{n}" for n in range(16)]
        for name in names:
            lab.ingress.call("Accounts", "Open", {"account": name, "balance_cents": 10**9})

        def body(n: int, side: str) -> dict[str, object]:
            return {"transfer_id": f"{side}-{run}-{n}", "from": names[n % 16],
                    "to": names[(n * 7 + 3) % 16], "amount_cents": 1}

        def through_restate(n: int) -> None:
            lab.ingress.call("Accounts", "Transfer", body(n, "restate"))

        def direct(n: int) -> None:
            accounts.apply(accounts.parse_transfer(body(n, "direct")), True)

        figures: dict[str, float] = {"transfers": count, "clients": CLIENTS}
        with ThreadPoolExecutor(CLIENTS) as clients:
            for side, action in (("direct", direct), ("restate", through_restate)):
                list(clients.map(action, range(-20, 0)))  # warm up
                started = time.perf_counter()
                list(clients.map(action, range(count)))
                figures[f"{side}_per_second"] = count / (time.perf_counter() - started)
    ratio = figures["restate_per_second"] / figures["direct_per_second"]
    direct, restate = figures["direct_per_second"], figures["restate_per_second"]
    print(f"Transfers per second, {CLIENTS} clients: straight from Python {direct:7.0f}; "
          f"through Restate {restate:7.0f} ({ratio:.2f}×)")
    report("transfers", figures,
           {"transfers/s through Restate / straight (×)": ratio,
            "transfers/s through Restate": figures["restate_per_second"]})


if __name__ == "__main__":
    main()
