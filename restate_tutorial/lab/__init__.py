"""The lab runtime: real restate-server, Kafka broker and service host, driven from Python.

It knows no tutorial pattern by name: give it services, it runs them.
"""

from .admin import FAST_CONSUMER_OPTIONS, AdminClient
from .binaries import restate_cli_binary, restate_server_binary, tansu_binary
from .cli import restate_cli, restatectl
from .cluster import RestateCluster
from .errors import IngressError, LabError
from .ingress import IngressClient
from .kafka import KafkaBroker
from .lab import KAFKA_CLUSTER, Lab, LabPorts
from .processes import free_port, wait_until
from .server import ExternalRestate, RestatePorts, RestateServer
from .service_host import ServiceHost

__all__ = [
    "FAST_CONSUMER_OPTIONS", "KAFKA_CLUSTER", "AdminClient", "ExternalRestate", "IngressClient",
    "IngressError",
    "KafkaBroker", "Lab", "LabError", "LabPorts", "RestateCluster", "RestatePorts", "RestateServer",
    "ServiceHost",
    "free_port", "restate_cli", "restate_cli_binary", "restate_server_binary", "restatectl",
    "tansu_binary", "wait_until",
]
