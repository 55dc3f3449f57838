"""Restate's admin API: deployments, Kafka clusters, subscriptions, SQL introspection."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import httpx

from .errors import LabError
from .failover import FailoverHttp
from .processes import wait_until

#: Consumer options that make a new subscription deliver its first event in ~2 s on the
#: embedded broker (the librdkafka defaults take ~24 s to settle the consumer group).
FAST_CONSUMER_OPTIONS = {
    "auto.offset.reset": "earliest",
    "session.timeout.ms": "2000",
    "heartbeat.interval.ms": "200",
}
#: How long an admin request is asked again while a partition has no leader (after a restart).
SETTLING_SECONDS = 10.0


class AdminClient:
    """Restate's admin API at ``urls`` (several for a cluster: the first node that is up)."""

    def __init__(self, urls: str | Sequence[str], timeout: float = 30.0) -> None:
        self._http = FailoverHttp(urls, timeout, health_path="/health")

    @property
    def url(self) -> str:
        """The admin URL of the node that answered last."""
        return self._http.url

    @property
    def urls(self) -> list[str]:
        return self._http.urls

    def _request(self, method: str, path: str, action: str, body: Any = None,
                 allow: tuple[int, ...] = ()) -> httpx.Response:
        deadline = time.monotonic() + SETTLING_SECONDS
        while True:
            try:
                response = self._http.request(method, path, json=body,
                                              headers={"accept": "application/json"})
            except httpx.TransportError as error:
                raise LabError(f"Restate admin at {self.url} is not reachable while trying to "
                               f"{action} ({error}): is the lab started?") from None
            # Right after a restart a partition may have no leader yet, or its leader be the
            # node's previous run ("not leader", "was shut down"): asked again shortly.
            if not (response.is_error and "routing the request internally" in response.text
                    and time.monotonic() < deadline):
                break
            time.sleep(0.2)
        if response.is_error and response.status_code not in allow:
            raise LabError(f"Restate refused to {action}: {_message(response)}")
        return response

    def health(self) -> bool:
        try:
            return self._http.request("GET", "/health").is_success
        except httpx.TransportError:
            return False

    # -- deployments -------------------------------------------------------------------------

    def register_deployment(self, uri: str, force: bool = True) -> dict[str, Any]:
        """Tell Restate where the services are (``force`` overrides a previous registration)."""
        return self._request("POST", "/deployments", f"register the deployment {uri} (is the "
                             "service host running and serving restate.app?)",
                             {"uri": uri, "force": force}).json()

    def remove_deployment(self, deployment_id: str) -> None:
        """Remove a deployment (``force``: also while invocations of it have not ended)."""
        self._request("DELETE", f"/deployments/{deployment_id}?force=true", "remove a deployment")

    def deployments(self) -> list[dict[str, Any]]:
        """Every registered deployment, with the services (and revisions) it serves."""
        return self._request("GET", "/deployments", "list deployments").json()["deployments"]

    def version(self) -> str:
        """The version of the restate-server that answers, e.g. "1.7.12"."""
        return str(self._request("GET", "/version", "tell its version").json()["version"])

    def services(self) -> list[str]:
        body = self._request("GET", "/services", "list services").json()
        return sorted(s["name"] for s in body["services"])

    def private_handlers(self) -> list[str]:
        """``Service/handler`` of every handler the ingress refuses (only handlers call it)."""
        body = self._request("GET", "/services", "list services").json()
        return sorted(f"{s['name']}/{h['name']}" for s in body["services"]
                      for h in s["handlers"] if not (s["public"] and h["public"]))

    # -- Kafka -------------------------------------------------------------------------------

    def register_kafka_cluster(self, name: str, bootstrap_servers: str) -> None:
        """Create the Kafka cluster ``name`` (1.7 admin API) unless Restate already has one by
        that name (e.g. from a restate.toml), which is then left as it is."""
        action = f"register Kafka cluster {name}"
        found = self._request("GET", f"/kafka-clusters/{name}", action, allow=(404,))
        if found.status_code == 404:
            self._request("POST", "/kafka-clusters", action,
                          {"name": name, "properties": {"bootstrap.servers": bootstrap_servers}})

    def subscriptions(self) -> list[dict[str, Any]]:
        return self._request("GET", "/subscriptions", "list subscriptions").json()["subscriptions"]

    def subscribe(self, topic: str, service: str, handler: str, cluster: str = "my-cluster",
                  options: dict[str, str] | None = None,
                  allow_duplicate: bool = False) -> dict[str, Any]:
        """Subscribe ``service/handler`` to ``topic``, unless an identical subscription exists.

        Restate itself accepts a second identical subscription (``allow_duplicate=True`` does
        what Restate does); it gets its own consumer group, so every event is processed twice.
        """
        source, sink = f"kafka://{cluster}/{topic}", f"service://{service}/{handler}"
        for existing in self.subscriptions():
            if existing["source"] == source and existing["sink"] == sink and not allow_duplicate:
                return existing
        body = {"source": source, "sink": sink, "options": options or FAST_CONSUMER_OPTIONS}
        return self._request("POST", "/subscriptions", f"subscribe {sink} to {source}", body).json()

    def unsubscribe(self, subscription_id: str) -> None:
        self._request("DELETE", f"/subscriptions/{subscription_id}",
                      f"delete subscription {subscription_id}")

    # -- invocations and SQL -----------------------------------------------------------------

    def cancel(self, invocation_id: str) -> None:
        """Cancel an invocation: it unwinds (compensations run) and ends with a failure (one
        that has ended, or is gone, is left as it is)."""
        self._request("PATCH", f"/invocations/{invocation_id}/cancel",
                      f"cancel invocation {invocation_id}", allow=(404, 409))

    def kill(self, invocation_id: str) -> None:
        """Kill an invocation: it ends at once, with no compensation (one that has ended
        already, or is gone — a cancelled scheduled call is dropped — is left as it is)."""
        self._request("PATCH", f"/invocations/{invocation_id}/kill",
                      f"kill invocation {invocation_id}", allow=(404, 409))

    def restart_as_new(self, invocation_id: str, from_index: int | None = None,
                       deployment: str | None = None) -> str:
        """Start a new invocation from a completed (e.g. killed) one; returns its id.

        It gets the old one's input; with ``from_index`` also its journal up to that entry
        (included), and runs on ``deployment`` (an id, or "latest"). Asked again for the same
        invocation, it returns the invocation the first request made instead of a second one.
        """
        earlier = self.sql("SELECT id FROM sys_invocation WHERE restarted_from = "
                           f"'{invocation_id}' ORDER BY created_at")
        if earlier:
            return str(earlier[0]["id"])
        options = {"from": from_index, "deployment": deployment}
        query = "&".join(f"{k}={v}" for k, v in options.items() if v is not None)
        response = self._request("PATCH", f"/invocations/{invocation_id}/restart-as-new"
                                 + (f"?{query}" if query else ""),
                                 f"restart invocation {invocation_id} as new")
        return str(response.json()["new_invocation_id"])

    def sql(self, query: str, timeout: float = 15.0) -> list[dict[str, Any]]:
        """Run SQL against Restate's introspection tables (sys_invocation, sys_journal, state…).

        Right after a node of a cluster died, queries fail for a moment while its partitions
        move ("External error: …"); those are retried until ``timeout``.
        """
        deadline = time.monotonic() + timeout
        while True:
            response = self._request("POST", "/query", "run SQL", {"query": query},
                                     allow=(500, 503))
            if response.is_success:
                return response.json()["rows"]
            message = _message(response)
            if "External error" not in message or time.monotonic() > deadline:
                raise LabError(f"Restate refused to run the SQL query {query!r}: {message}")
            time.sleep(0.2)

    def describe_unfinished(self, target: str) -> str:
        """What Restate's records say of the newest unfinished invocation of ``target``
        (``Service/handler`` or ``Object/key/handler``), in one line; "" if there is none."""
        rows = self.sql("SELECT id, status, retry_count, last_failure FROM sys_invocation"
                        f" WHERE target = {sql_string(target)} AND status <> 'completed'"
                        " ORDER BY created_at DESC LIMIT 1")
        if not rows:
            return ""
        row = rows[0]
        failure = (row.get("last_failure") or "").split("\n", 1)[0]
        return (f"Restate's record of it ({row['id']}): {row['status']}, "
                f"{row.get('retry_count') or 0} retries"
                + (f", last failure: {failure}" if failure else ", no failure"))

    def wait_for_entry(self, invocation_id: str, entry_type: str, count: int = 1,
                       timeout: float = 30.0) -> None:
        """Block until the invocation's journal holds ``count`` entries of ``entry_type``
        (e.g. ``"Command: Sleep"``): the moment to pull the plug in a crash demo."""
        query = (f"SELECT count(*) AS n FROM sys_journal WHERE id = '{invocation_id}'"
                 f" AND entry_type = '{entry_type}'")
        wait_until(lambda: self.sql(query)[0]["n"] >= count, timeout,
                   f"{count} {entry_type!r} entries in the journal of {invocation_id}",
                   interval=0.05)

    def wait_for_status(self, invocation_id: str, *statuses: str, failure: str = "",
                        timeout: float = 30.0) -> dict[str, Any]:
        """Block until the invocation is in one of ``statuses`` (e.g. "backing-off", "paused",
        "completed"); returns its row of ``sys_invocation`` at that moment. With ``failure``,
        a backing-off invocation counts only once its last failure contains that text."""
        query = f"SELECT * FROM sys_invocation WHERE id = '{invocation_id}'"
        found: list[dict[str, Any]] = []

        def reached() -> bool:
            found[:] = self.sql(query)
            return (bool(found) and found[0]["status"] in statuses
                    and (found[0]["status"] != "backing-off"
                         or failure in found[0].get("last_failure", "")))

        wait_until(reached, timeout, f"{invocation_id} {' or '.join(statuses)} {failure}",
                   interval=0.05)
        return found[0]

    def wait_for_invocation(self, service: str, key: str, timeout: float = 60.0,
                            handler: str | None = None) -> str:
        """Block until ``service`` has an invocation for ``key`` (of ``handler``, if given; e.g.
        one a Kafka record started); returns the id of its first one."""
        query = (f"SELECT id FROM sys_invocation WHERE target_service_name = {sql_string(service)}"
                 f" AND target_service_key = {sql_string(key)}"
                 + (f" AND target_handler_name = {sql_string(handler)}" if handler else "")
                 + " ORDER BY created_at LIMIT 1")
        found: list[dict[str, Any]] = []

        def started() -> bool:
            found[:] = self.sql(query)
            return bool(found)

        wait_until(started, timeout, f"an invocation of {service} for {key}", interval=0.05)
        return str(found[0]["id"])

    def wait_until_ended(self, *invocation_ids: str, service: str | None = None,
                         key: str | None = None, handler: str | None = None, count: int = 1,
                         timeout: float = 30.0) -> list[dict[str, Any]]:
        """Block until the invocations — ``invocation_ids``, or every one of ``service`` (with
        ``key``, ``handler``), at least ``count`` of them — have ended, successfully or not;
        returns their ``sys_invocation`` rows, oldest first.

        Read a status, a count or a ledger's history only after this: an effect (a post in a
        feed, a charge) is visible a moment before the invocation that made it has ended."""
        clauses = [f"id IN ({', '.join(map(sql_string, invocation_ids))})"] if invocation_ids \
            else []
        clauses += [f"{column} = {sql_string(value)}" for column, value in (
            ("target_service_name", service), ("target_service_key", key),
            ("target_handler_name", handler)) if value is not None]
        if not clauses:
            raise ValueError("name the invocations to wait for: their ids, or a service")
        query = f"SELECT * FROM sys_invocation WHERE {' AND '.join(clauses)} ORDER BY created_at"
        needed = max(count, len(invocation_ids))
        rows: list[dict[str, Any]] = []

        def ended() -> bool:
            rows[:] = self.sql(query)
            return len(rows) >= needed and all(row["status"] == "completed" for row in rows)

        wait_until(ended, timeout, f"{needed} invocation(s) where {' and '.join(clauses)} to "
                   "end", interval=0.05)
        return rows

    def close(self) -> None:
        self._http.close()


def sql_string(value: str) -> str:
    """``value`` as a SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json()["message"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code} {response.text[:200]}".strip()
