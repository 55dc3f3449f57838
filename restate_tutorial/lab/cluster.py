"""A Restate cluster of N restate-server processes on this machine: replicated log, no Docker."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from . import processes
from .cli import restatectl
from .server import RestatePorts, RestateServer

CLUSTER_NAME = "lab-cluster"


class RestateCluster:
    """``len(ports)`` nodes that form one cluster (node 1 provisions it), every listener on
    127.0.0.1, the log replicated to ``replication`` nodes.

    ``node(i)`` is one node (1-based): kill and restart any of them. Used where a single
    :class:`RestateServer` would be: ``start``/``stop``/``kill`` act on every node, and
    ``admin_urls``/``ingress_urls`` list every node for clients that fail over.
    """

    def __init__(self, ports: Sequence[RestatePorts], data_dir: Path | None = None,
                 replication: int = 2) -> None:
        self.data_dir = data_dir or processes.temp_dir("restate-cluster-")
        metadata = ",".join(f'"http://127.0.0.1:{p.node}/"' for p in ports)
        self.nodes = [
            RestateServer(p, self.data_dir / f"n{i}", node_name=f"n{i}", cluster_env={
                "RESTATE_CLUSTER_NAME": CLUSTER_NAME,
                "RESTATE_AUTO_PROVISION": "true" if i == 1 else "false",
                "RESTATE_DEFAULT_REPLICATION": str(replication),
                "RESTATE_DEFAULT_NUM_PARTITIONS": "4",  # leaders spread over the nodes
                "RESTATE_METADATA_CLIENT__ADDRESSES": f"[{metadata}]",
            })
            for i, p in enumerate(ports, start=1)
        ]

    def node(self, number: int) -> RestateServer:
        """Node ``number``, counting from 1 (its name is ``n<number>``)."""
        return self.nodes[number - 1]

    @property
    def admin_urls(self) -> list[str]:
        return [n.admin_url for n in self.nodes]

    @property
    def ingress_urls(self) -> list[str]:
        return [n.ingress_url for n in self.nodes]

    @property
    def admin_url(self) -> str:
        return self.nodes[0].admin_url

    @property
    def ingress_url(self) -> str:
        return self.nodes[0].ingress_url

    @property
    def running(self) -> bool:
        """At least one node is up."""
        return any(n.running for n in self.nodes)

    @property
    def pid(self) -> int | None:
        return None

    def start(self, timeout: float = 60.0) -> RestateCluster:
        """Start every node that is not running (together: they need each other to be ready)."""
        for node in self.nodes:
            node.launch()
        for node in self.nodes:
            node.wait_ready(timeout)
        return self

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()

    def kill(self) -> None:
        """Crash every node at once."""
        for node in self.nodes:
            node.kill()

    def restart(self, timeout: float = 60.0) -> RestateCluster:
        self.kill()
        return self.start(timeout)

    def status(self) -> str:
        """What the cluster says about itself (`restatectl status`, asked of the live nodes)."""
        return restatectl([n.node_url for n in self.nodes if n.running], "status")

    def partitions(self) -> dict[str, tuple[int, int]]:
        """How many partitions each live node leads and follows, from `restatectl status`."""
        names = {n.node_name for n in self.nodes}
        counts = {}
        for cells in (line.split() for line in self.status().splitlines()):
            # NODE-ID  NAME  UPTIME  METADATA  LEADER  FOLLOWER  …
            if len(cells) > 5 and cells[1] in names and cells[4].isdigit() and cells[5].isdigit():
                counts[cells[1]] = (int(cells[4]), int(cells[5]))
        return counts

    def logs(self, tail: int | None = None) -> str:
        return "\n".join(f"[{n.node_name}] {line}" for n in self.nodes
                         for line in n.logs(tail).splitlines())

    def __repr__(self) -> str:
        up = [n.node_name for n in self.nodes if n.running]
        return f"RestateCluster({len(self.nodes)} nodes, running: {', '.join(up) or 'none'})"
