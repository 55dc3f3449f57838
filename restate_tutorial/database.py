"""Your own database: the PostgreSQL where services keep their own data.

A service that keeps data there says so (``database.uses(service)``); a lab that serves one
starts PostgreSQL (or uses yours, RESTATE_TUTORIAL_DATABASE_URL) and points this module at it
(``point_at``); handlers open connections with ``connect()``. A lab that serves none of them
starts no PostgreSQL.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any, TypeVar

#: Points the lab (and this module, with no lab) at your own PostgreSQL: a postgresql:// URI.
URL_VARIABLE = "RESTATE_TUTORIAL_DATABASE_URL"
_SERVICES: set[str] = set()
_url: str | None = None
S = TypeVar("S")


def uses(service: S) -> S:
    """Mark ``service`` (a restate.Service, Object or Workflow) as keeping data in PostgreSQL."""
    _SERVICES.add(service.name)  # type: ignore[attr-defined]
    return service


def needed_by(services: Iterable[Any]) -> bool:
    return any(getattr(s, "name", None) in _SERVICES for s in services)


def point_at(url: str) -> None:
    """Where ``connect()`` connects from now on (the lab calls it once PostgreSQL is up)."""
    global _url
    _url = url


def url() -> str:
    found = _url or os.environ.get(URL_VARIABLE)
    if found:
        return found
    raise RuntimeError("No PostgreSQL yet: start a lab that serves one of its services (e.g. "
                       f"Accounts), or set {URL_VARIABLE}=postgresql://….")


def connect() -> Any:
    """A new connection (a psycopg 3 ``Connection``): ``with connect() as c, c.transaction():``."""
    import psycopg

    return psycopg.connect(url(), connect_timeout=10)
