"""What 300 `lab.serve(...)` calls in a row cost: threads, open files and listening ports of
this process, and restate-server's memory, after 1, 100, 200 and 300 serves (figures only).

    .venv/bin/python benchmarks/serve_many.py
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import psutil
import restate
from restate import Context

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from restate_tutorial.lab import Lab  # noqa: E402


def version(n: int) -> restate.Service:
    service = restate.Service("Edited")

    @service.handler()
    async def greet(ctx: Context, request: dict) -> str:
        return f"v{n}: hello {request['who']}"

    return service


def main() -> None:
    me = psutil.Process()
    with Lab([]) as lab:
        server = psutil.Process(lab.server.pid)  # type: ignore[union-attr]
        for n in range(1, 301):
            lab.serve(version(n))
            if n in (1, 100, 200, 300):
                assert lab.ingress.call("Edited", "greet", {"who": "Ada"}) == f"v{n}: hello Ada"
                listening = [c for c in me.net_connections("inet")
                             if c.status == psutil.CONN_LISTEN]
                print(json.dumps({"serves": n, "threads": threading.active_count(),
                                  "open_files": me.num_fds(), "listening_ports": len(listening),
                                  "restate_server_mb": server.memory_info().rss // 2**20}))


if __name__ == "__main__":
    main()
