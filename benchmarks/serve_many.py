"""What 300 `lab.serve(...)` calls in a row cost: threads, open files and listening ports of
this process, and restate-server's memory, after 1, 100, 200 and 300 serves (figures only).

    .venv/bin/python benchmarks/serve_many.py
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import psutil
import restate
from restate import Context

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import report, sized  # noqa: E402
from restate_tutorial.lab import Lab  # noqa: E402


def version(n: int) -> restate.Service:
    service = restate.Service("Edited")

    @service.handler()
    async def greet(ctx: Context, request: dict) -> str:
        return f"v{n}: hello {request['who']}"

    return service


SERVES = sized(300, 3)


def main() -> None:
    me = psutil.Process()
    marks = {1, SERVES // 3, 2 * SERVES // 3, SERVES}
    after: dict[int, dict[str, int]] = {}
    with Lab([]) as lab:
        server = psutil.Process(lab.server.pid)  # type: ignore[union-attr]
        for n in range(1, SERVES + 1):
            lab.serve(version(n))
            if n in marks:
                assert lab.ingress.call("Edited", "greet", {"who": "Ada"}) == f"v{n}: hello Ada"
                listening = [c for c in me.net_connections("inet")
                             if c.status == psutil.CONN_LISTEN]
                after[n] = {"threads": threading.active_count(), "open_files": me.num_fds(),
                            "listening_ports": len(listening),
                            "restate_server_mb": server.memory_info().rss // 2**20}
                print(f"after {n:>3} serves: {after[n]}")
    first, last = after[1], after[SERVES]
    report("serve_many", {"serves": SERVES, "after": after},
           {f"threads after {SERVES} serves / after 1 (×)": last["threads"] / first["threads"],
            f"open files after {SERVES} serves / after 1 (×)":
                last["open_files"] / first["open_files"]})


if __name__ == "__main__":
    main()
