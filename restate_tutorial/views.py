"""Views of what Restate recorded: invocations, one invocation's journal, state.

Each view is a :class:`Table` that renders as HTML in Jupyter and as plain text in a terminal
(``print(view)``). The data comes only from Restate's SQL introspection API.
"""

from __future__ import annotations

import dataclasses
import html
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, overload

from .lab.admin import AdminClient, sql_string
from .lab.errors import LabError
from .lab.processes import wait_until

if TYPE_CHECKING:
    from .lab.traces import Span as TraceSpan
    from .lab.traces import TraceCollector


class Table:
    """Rows (dicts) with named columns; ``_repr_html_`` for Jupyter, ``str`` for terminals."""

    def __init__(self, title: str, columns: Sequence[str], rows: list[dict[str, Any]],
                 link: str | None = None) -> None:
        self.title = title
        self.columns = list(columns)
        self.rows = rows
        self.link = link  # the same data in the Restate web UI

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows)

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, index: slice) -> Table: ...

    def __getitem__(self, index: int | slice) -> dict[str, Any] | Table:
        """A row, or (a slice, e.g. ``[-5:]``) a table of those rows."""
        if isinstance(index, slice):
            return Table(self.title, self.columns, self.rows[index], self.link)
        return self.rows[index]

    def column(self, name: str) -> list[Any]:
        return [row.get(name) for row in self.rows]

    def _cells(self, row: dict[str, Any]) -> list[str]:
        return [mask_card_numbers("" if row.get(c) is None else str(row[c]))
                for c in self.columns]

    def __str__(self) -> str:
        cells = [self._cells(row) for row in self.rows]
        widths = [min(60, max([len(c)] + [len(r[i]) for r in cells]))
                  for i, c in enumerate(self.columns)]

        def line(values: Sequence[str]) -> str:
            padded = (_clip(v, w).ljust(w) for v, w in zip(values, widths, strict=True))
            return "  ".join(padded).rstrip()

        out = [self.title, line(self.columns), line(["-" * w for w in widths])]
        out += [line(r) for r in cells] or ["(no rows)"]
        return "\n".join(out)

    def _repr_html_(self) -> str:
        head = "".join(f"<th style='text-align:left'>{html.escape(c)}</th>" for c in self.columns)
        # Long values wrap between words inside the notebook's width (a word breaks only when it
        # is wider than the cell on its own: "anywhere" would shrink columns mid-word).
        cell = ("<td style='text-align:left;font-family:monospace;white-space:pre-wrap;"
                "overflow-wrap:break-word;max-width:28em'>")
        body = "".join(
            "<tr>" + "".join(f"{cell}{html.escape(v)}</td>" for v in self._cells(row)) + "</tr>"
            for row in self.rows
        ) or f"<tr><td colspan='{len(self.columns)}'><i>no rows</i></td></tr>"
        link = (f" · <a href='{html.escape(self.link)}' target='_blank'>in the Restate UI</a>"
                if self.link else "")
        return (f"<b>{html.escape(self.title)}</b>{link}<table style='table-layout:auto;"
                f"max-width:100%'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

    def __repr__(self) -> str:
        return str(self)


_CARD_NUMBER = re.compile(r"(?<!\d)\d{13,19}(?!\d)")


def database(title: str, query: str, *params: Any) -> Table:
    """The rows a query finds in your own database (PostgreSQL), as a table."""
    from . import database as own

    with own.connect() as conn:
        cursor = conn.execute(query, params)
        columns = [column.name for column in cursor.description]
        return Table(title, columns, [dict(zip(columns, row, strict=True)) for row in cursor])


def mask_card_numbers(text: str) -> str:
    """Every run of 13-19 digits (a card number, e.g. in a request body) → its last 4 only."""
    return _CARD_NUMBER.sub(lambda m: "*" * (len(m[0]) - 4) + m[0][-4:], text)


def _clip(value: str, width: int) -> str:
    value = value.replace("\n", " ")
    return value if len(value) <= width else value[: width - 1] + "…"


def _answered_by(admin: AdminClient) -> str:
    """' · answered by <node>' when the lab is a cluster (which node served the query)."""
    return f" · answered by {admin.url}" if len(admin.urls) > 1 else ""


def _where(**equals: str | None) -> str:
    clauses = [f"{column} = {sql_string(v)}" for column, v in equals.items() if v is not None]
    return f" WHERE {' AND '.join(clauses)}" if clauses else ""


def invocations(admin: AdminClient, service: str | None = None, key: str | None = None,
                handler: str | None = None, status: str | None = None,
                show_deployment: bool = False) -> Table:
    """Invocations Restate knows of, oldest first, filterable by service/key/handler/status
    (Restate's statuses, plus "failed": completed with a failure, as the Restate UI shows it).
    ``show_deployment`` adds the deployment each one is pinned to (it runs to its end there)."""
    where = _where(target_service_name=service, target_service_key=key,
                   target_handler_name=handler,
                   status="completed" if status == "failed" else status)
    if status in ("failed", "completed"):
        where += (" AND completion_failure IS " + ("NOT NULL" if status == "failed" else "NULL"))
    rows = admin.sql(
        "SELECT id, target, status, invoked_by, invoked_by_subscription_id, retry_count,"
        " journal_size, created_at, completed_at, completion_failure, last_failure,"
        " pinned_deployment_id AS deployment"
        " FROM sys_invocation" + where + " ORDER BY created_at"
    )
    for row in rows:
        row["via"] = "kafka" if row.get("invoked_by_subscription_id") else row.get("invoked_by")
        row["failure"] = row.get("completion_failure") or row.get("last_failure")
        if row.get("status") == "completed" and row.get("completion_failure"):
            row["status"] = "failed"  # as the Restate UI says: completed, with a failure
        row["created"] = _time(row.get("created_at"))
        row["completed"] = _time(row.get("completed_at"))
    columns = ["id", "target", "status", "via", "retry_count", "journal_size", "created",
               "completed", "failure"] + (["deployment"] if show_deployment else [])
    return Table(f"Invocations ({len(rows)}){_answered_by(admin)}", columns, rows,
                 link=f"{admin.url}/ui/invocations")


class LiveInvocations:
    """The invocations of ``service`` that start from now on, as a table shown once in a
    notebook and updated while :meth:`wait` waits; every update is kept in ``snapshots``."""

    def __init__(self, admin: AdminClient, service: str) -> None:
        from IPython.display import display

        self.admin, self.service = admin, service
        self._before = {row["id"] for row in invocations(admin, service=service)}
        self.snapshots: list[list[dict[str, Any]]] = []
        self._shown = display(invocations(admin, service=service), display_id=True)

    def wait(self, done: Any, timeout: float, what: str) -> None:
        """Refresh the table (a few times a second) until ``done()`` is true."""
        def refreshed_and_done() -> bool:
            table = invocations(self.admin, service=self.service)
            if self._shown is not None:
                self._shown.update(table)
            self.snapshots.append([row for row in table if row["id"] not in self._before])
            return bool(done())

        wait_until(refreshed_and_done, timeout, what, interval=0.25)


def waiting(admin: AdminClient, service: str | None = None) -> Table:
    """The invocations that have not ended, and what each waits for now: the promises, timers
    and calls in its journal with no completion yet. (An awakeable has no journal entry until
    it completes: a wait on one shows only the timer raced against it, if any.)"""
    unfinished = admin.sql("SELECT id, target, status, created_at FROM sys_invocation WHERE "
                           "status <> 'completed'"
                           + (f" AND target_service_name = {sql_string(service)}" if service
                              else "") + " ORDER BY created_at")
    pending: dict[str, dict[int, str]] = {row["id"]: {} for row in unfinished}
    if pending:
        entries = admin.sql("SELECT id, entry_type, entry_json FROM sys_journal WHERE id IN ("
                            + ", ".join(sql_string(i) for i in pending) + ") ORDER BY index")
        for entry in entries:
            body = _variant(json.loads(entry["entry_json"] or "{}"))
            if entry["entry_type"].startswith("Notification"):
                pending[entry["id"]].pop(body.get("completion_id"), None)
            elif (what := _awaited(entry["entry_type"], body)) is not None:
                pending[entry["id"]][body.get("result_completion_id",
                                              body.get("completion_id"))] = what
    for row in unfinished:
        row["created"] = _time(row.get("created_at"))
        row["waits for"] = ("; ".join(pending[row["id"]].values())
                            or "nothing journaled: running, or an awakeable")
    return Table(f"Waiting invocations ({len(unfinished)}){_answered_by(admin)}",
                 ["id", "target", "status", "created", "waits for"], unfinished,
                 link=f"{admin.url}/ui/invocations")


def scheduled(admin: AdminClient, service: str | None = None) -> Table:
    """Calls waiting for their time (sent with a delay), soonest first: what will run, when,
    and in how long. Cancelling one (``restate invocations cancel <id>``) means it never runs."""
    # restate-server 1.7.12 fills scheduled_start_at only when scheduled_at is selected too.
    rows = admin.sql("SELECT id, target, scheduled_at, scheduled_start_at FROM sys_invocation"
                     + _where(status="scheduled", target_service_name=service)
                     + " ORDER BY scheduled_start_at")
    for row in rows:
        due = parse_time(row["scheduled_start_at"])
        row["due"] = millis_to_time(int(due.timestamp() * 1000))
        row["in"] = f"{max((due - _now()).total_seconds(), 0):.1f} s"
    # The UI's list of invocations filters scheduled calls out: link the soonest one's page.
    link = ui_link(admin, rows[0]["id"]) if rows else f"{admin.url}/ui/invocations"
    return Table(f"Scheduled calls ({len(rows)}){_answered_by(admin)}",
                 ["id", "target", "due", "in"], rows, link=link)


def _awaited(entry_type: str, body: dict[str, Any]) -> str | None:
    """What a journaled command waits for, in words; None for one that waits for nothing."""
    kind = entry_type.removeprefix("Command: ")
    if kind in ("GetPromise", "PeekPromise"):
        return f"promise {body.get('key')!r}"
    if kind == "Sleep" and isinstance(body.get("wake_up_time"), int):
        due = datetime.fromtimestamp(body["wake_up_time"] / 1000, timezone.utc)
        return (f"timer at {millis_to_time(body['wake_up_time'])} (in "
                f"{max((due - _now()).total_seconds(), 0):.0f} s)")
    if kind == "Call" and isinstance(body.get("request"), dict):
        return f"call {call_target(body['request'])}"
    if kind == "Run":
        return f"step {body.get('name') or 'run'!r}"
    return None


def deployments(admin: AdminClient) -> Table:
    """The registered deployments, oldest first: where each one is served, what it serves,
    and how many unfinished invocations are pinned to it (they finish there, and only there)."""
    unfinished = {row.get("deployment"): row["n"] for row in admin.sql(
        "SELECT pinned_deployment_id AS deployment, count(*) AS n FROM sys_invocation"
        " WHERE status <> 'completed' GROUP BY pinned_deployment_id")}
    rows = sorted(admin.deployments(), key=lambda d: d.get("created_at", ""))
    for row in rows:
        row["endpoint"] = row.get("uri") or row.get("arn") or ""
        row["created"] = _time(row.get("created_at"))
        row["services"] = ", ".join(f"{s['name']} (revision {s['revision']})"
                                    for s in row.get("services", []))
        row["unfinished invocations"] = unfinished.get(row["id"], 0)
    return Table(f"Deployments ({len(rows)}){_answered_by(admin)}",
                 ["id", "endpoint", "created", "services", "unfinished invocations"], rows,
                 link=f"{admin.url}/ui/overview")


def journal(admin: AdminClient, invocation_id: str) -> Table:
    """The journal of one invocation: what Restate recorded, entry by entry."""
    rows = admin.sql(
        "SELECT index, entry_type, name, appended_at, entry_json FROM sys_journal"
        f" WHERE id = {sql_string(invocation_id)} ORDER BY index"
    )
    for row in rows:
        row["appended"] = _time(row.get("appended_at"))
        row["detail"] = entry_detail(row.get("entry_json"))
    return Table(f"Journal of {invocation_id} ({len(rows)} entries){_answered_by(admin)}",
                 ["index", "entry_type", "name", "appended", "detail"], rows,
                 link=ui_link(admin, invocation_id))


def ui_link(admin: AdminClient, invocation_id: str) -> str:
    """The invocation's page in the Restate web UI (its journal drawn as a timeline)."""
    return f"{admin.url}/ui/invocations/{invocation_id}"


def state(admin: AdminClient, service: str, key: str | None = None) -> Table:
    """The K/V state Restate keeps for a virtual object/workflow (one key, or all keys)."""
    rows = admin.sql("SELECT service_key, key, value_utf8 FROM state"
                     + _where(service_name=service, service_key=key)
                     + " ORDER BY service_key, key")
    for row in rows:
        row["value"] = _readable(row.pop("value_utf8"))
    title = f"State of {service}" + (f"/{key}" if key is not None else "") + _answered_by(admin)
    return Table(title, ["service_key", "key", "value"], rows)


def conversation(admin: AdminClient, service: str, key: str) -> Table:
    """An agent's conversation as Restate keeps it — the OpenAI Agents SDK's items in the
    object's state ``items`` — one line per item: who said or did what."""
    rows = admin.sql("SELECT value_utf8 FROM state"
                     + _where(service_name=service, service_key=key, key="items"))
    items = json.loads(rows[0]["value_utf8"]) if rows else []
    lines = [{"#": number, **_conversation_item(item)} for number, item in enumerate(items, 1)]
    return Table(f"Conversation {service}/{key} (its state \"items\"){_answered_by(admin)}",
                 ["#", "who", "what"], lines)


def _conversation_item(item: dict[str, Any]) -> dict[str, str]:
    """One item of the OpenAI Agents SDK (a message, a tool call, a tool's result): who, what."""
    if item.get("type") == "function_call":
        return {"who": "model → tool", "what": f"{item.get('name')}({item.get('arguments')})"}
    if item.get("type") == "function_call_output":
        return {"who": "tool → model", "what": _clip(str(item.get("output")), 120)}
    content = item.get("content")
    text = content if isinstance(content, str) else " ".join(
        part.get("text", "") for part in content or [] if isinstance(part, dict))
    return {"who": str(item.get("role", "?")), "what": text}


def sleeps(admin: AdminClient, invocation_id: str) -> list[datetime]:
    """When each durable sleep of the invocation wakes up (UTC), as journaled."""
    rows = admin.sql("SELECT entry_json FROM sys_journal WHERE entry_type = 'Command: Sleep'"
                     f" AND id = {sql_string(invocation_id)} ORDER BY index")
    return [wake_up_time(r["entry_json"]) for r in rows]


def wake_up_time(entry_json: str) -> datetime:
    """When the sleep of a ``Command: Sleep`` journal entry wakes up (UTC)."""
    return datetime.fromtimestamp(_variant(json.loads(entry_json))["wake_up_time"] / 1000,
                                  timezone.utc)


def _time(value: Any) -> str | None:
    """'2026-11-28T18:06:39.620Z' → '18:06:39.620' (UTC)."""
    if not value:
        return None
    text = str(value)
    return text[11:23] if len(text) >= 23 else text


def millis_to_time(millis: int) -> str:
    """'18:06:39.620' (UTC) — with the date in front when it is not today (a timer set for
    tomorrow is not one that fires in a moment)."""
    moment = datetime.fromtimestamp(millis / 1000, timezone.utc)
    time_of_day = moment.strftime("%H:%M:%S.%f")[:-3]
    return time_of_day if moment.date() == _now().date() else f"{moment:%Y-%m-%d} {time_of_day}"


_BOOKKEEPING = {"completion_id", "headers", "name", "result_completion_id",
                "invocation_id_completion_id"}


def entry_detail(entry_json: str | None) -> str:
    """A one-line summary of a journal entry: payloads decoded, bookkeeping fields dropped.

    ``✓ value`` / ``✗ [code] message`` for results, ``field=value`` pairs for the rest.
    """
    if not entry_json:
        return ""
    value: Any = _decode(json.loads(entry_json))
    # {"Command": {"Run": {...}}} → {...}: variant names are capitalised, field names are not.
    while (isinstance(value, dict) and len(value) == 1
           and next(iter(value))[:1].isupper() and not {"Success", "Failure"} & value.keys()):
        value = next(iter(value.values()))
    if not isinstance(value, dict):
        return "" if value in (None, [], {}) else str(value)
    if {"Success", "Failure", "Void"} & value.keys():
        return _outcome(value)
    if isinstance(value.get("request"), dict):  # a call or a one-way send to another handler
        request = value["request"]
        argument = request.get("parameter")
        return f"→ {call_target(request)}" + (f" {argument}" if argument else "")
    parts = []
    for field, item in value.items():
        if field in _BOOKKEEPING or item in (None, "", [], {}):
            continue
        if field == "wake_up_time" and isinstance(item, int):
            item = millis_to_time(item)
        elif isinstance(item, dict) and {"Success", "Failure", "Void"} & item.keys():
            item = _outcome(item)
        elif not isinstance(item, str):
            item = json.dumps(item, ensure_ascii=False)
        else:  # JSON text with a space after each comma and colon: a line may break there
            item = _readable(item)
        parts.append(item if field in {"payload", "value", "result"} else f"{field}={item}")
    return ", ".join(parts)


def call_target(request: dict[str, Any]) -> str:
    """'Service/handler' (or 'Object/key/handler') of a journaled call request."""
    target = next(iter(request.get("invocation_target", {}).values()), {})
    key = target.get("key")
    return "/".join(str(p) for p in (target.get("name"), key, target.get("handler"))
                    if p is not None)


def _outcome(value: dict[str, Any]) -> str:
    if "Failure" in value:
        failure = value["Failure"] or {}
        return f"✗ [{failure.get('code')}] {failure.get('message')}"
    success = value.get("Success")
    if success in (None, [], ""):
        return "✓"
    return f"✓ {_model_answer(success) or _readable(success)}"


def _readable(value: Any) -> Any:
    """JSON text with its \\u escapes shown as the characters they stand for ("€", not
    "\\u20ac")."""
    try:
        return json.dumps(json.loads(value), ensure_ascii=False)
    except (TypeError, ValueError):
        return value


def _model_answer(result: Any) -> str | None:
    """A journaled model answer (the OpenAI Agents SDK's, via DurableRunner's "call LLM" step)
    in a few words: the tools it asks for, or the start of its text; None if it is not one."""
    try:
        items = [_conversation_item(item) for item in json.loads(result)["output"]]
    except (TypeError, ValueError, KeyError, AttributeError):
        return None
    calls = [item["what"] for item in items if item["who"] == "model → tool"]
    texts = [item["what"] for item in items if item["who"] == "assistant"]
    return ("asks for " + ", ".join(calls)) if calls else f"answers “{' '.join(texts)}”"


def _decode(value: Any) -> Any:
    """Byte arrays (lists of ints) in Restate's entry JSON become the text they hold."""
    if isinstance(value, list) and value and all(isinstance(b, int) and 0 <= b < 256
                                                 for b in value):
        try:
            return bytes(value).decode()
        except UnicodeDecodeError:
            return f"<{len(value)} bytes>"
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict):
        return {k: _decode(v) for k, v in value.items()}
    return value


class SequenceDiagram:
    """Who called whom, in journal order: Mermaid in JupyterLab, arrows as text elsewhere."""

    def __init__(self, actor: str, steps: list[tuple[str, str, str]]) -> None:
        self.actor = actor
        self.steps = steps  # (from, to, label); from == to is a note on that participant

    def mermaid(self) -> str:
        lines = ["sequenceDiagram", f"    participant {_mermaid_id(self.actor)} as {self.actor}"]
        for source, target, label in self.steps:
            text = _mermaid_text(label)
            if source == target:
                lines.append(f"    Note over {_mermaid_id(source)}: {text}")
            else:
                arrow = "-->>" if target == self.actor else "->>"
                lines.append(f"    {_mermaid_id(source)}{arrow}{_mermaid_id(target)}: {text}")
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        return f"```mermaid\n{self.mermaid()}\n```"

    def __str__(self) -> str:
        out = []
        for source, target, label in self.steps:
            if source == target:
                line = f"  · {label}"
            elif source == self.actor:
                line = f"  → {target}: {label}"
            else:
                line = f"  ← {source}: {label}"
            out.append(mask_card_numbers(line))
        return "\n".join([self.actor, *out])

    def __repr__(self) -> str:
        return str(self)


def sequence(admin: AdminClient, invocation_id: str) -> SequenceDiagram:
    """The calls, journaled steps and timers of one invocation, with their outcomes."""
    rows = admin.sql("SELECT target_service_name AS service FROM sys_invocation"
                     f" WHERE id = {sql_string(invocation_id)}")
    actor = rows[0]["service"] if rows else invocation_id
    steps: list[tuple[str, str, str]] = []
    waiting: dict[int, tuple[str, str]] = {}  # completion id → (participant, what)
    for row in journal(admin, invocation_id):
        entry = json.loads(row.get("entry_json") or "{}")
        body = _variant(entry)
        if row["entry_type"] == "Command: Call":
            participant = call_target(body["request"]).split("/")[0]
            steps.append((actor, participant, call_target(body["request"]).split("/")[-1]))
            waiting[body.get("result_completion_id")] = (participant, "")
        elif row["entry_type"] == "Command: Run":  # shown once its result is in
            waiting[body.get("completion_id")] = (actor, f"run {row.get('name') or ''} ")
        elif row["entry_type"] == "Command: Sleep":
            steps.append((actor, actor, f"sleep until {millis_to_time(body['wake_up_time'])}"))
        elif row["entry_type"] in ("Notification: Call", "Notification: Run"):
            participant, what = waiting.pop(body.get("completion_id"), (actor, ""))
            outcome = _outcome(_decode(body.get("result", {})))
            steps.append((participant, actor, f"{what}{outcome}"))
        elif row["entry_type"] == "Command: Output":
            steps.append((actor, actor, f"output {_outcome(_decode(body.get('result', {})))}"))
    steps += [(actor, actor, f"{what}(running)") for who, what in waiting.values() if who == actor]
    return SequenceDiagram(actor, steps)


def _variant(entry: dict[str, Any]) -> dict[str, Any]:
    """{"Command": {"Call": {...}}} → {...} (the fields of the entry)."""
    body: Any = entry
    while isinstance(body, dict) and len(body) == 1 and next(iter(body))[:1].isupper():
        body = next(iter(body.values()))
    return body if isinstance(body, dict) else {}


def _mermaid_id(name: str) -> str:
    return re.sub(r"\W", "_", name)


_UUID = re.compile(r"\b([0-9a-f]{8})-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")


def _mermaid_text(label: str) -> str:
    """A label that fits a diagram: UUIDs shortened to their first 8 digits (the text version
    keeps them whole), long text cut at a word boundary."""
    text = mask_card_numbers(label).replace(";", ",").replace("#", "").replace("\n", " ")
    text = _UUID.sub(r"\1…", text)
    if len(text) <= 70:
        return text
    cut = text[:69].rsplit(" ", 1)[0]
    return (cut if len(cut) > 40 else text[:69]) + " …"


@dataclass
class Span:
    """One invocation on the timeline: queued (in the key's inbox) → running → completed."""

    key: str
    invocation_id: str
    status: str
    created: datetime
    started: datetime | None
    completed: datetime | None
    sleeps: list[tuple[datetime, datetime]] = dataclasses.field(default_factory=list)


class Timeline:
    """Invocations of one service per key over time, from Restate's records.

    Renders as a matplotlib chart in Jupyter (one row per key) and as text bars elsewhere.
    """

    def __init__(self, service: str, spans: list[Span]) -> None:
        self.service = service
        self.spans = spans

    def keys(self) -> list[str]:
        return sorted({span.key for span in self.spans})

    def of(self, key: str) -> list[Span]:
        """The spans of one key, in the order they ran."""
        return sorted((s for s in self.spans if s.key == key),
                      key=lambda s: (s.started or _now(), s.created))

    def _bounds(self) -> tuple[datetime, datetime]:
        start = min(s.created for s in self.spans)
        end = max(s.completed or _now() for s in self.spans)
        return start, max(end, start)

    def figure(self) -> Any:
        from matplotlib.figure import Figure

        origin, _ = self._bounds()

        def seconds(moment: datetime) -> float:
            return (moment - origin).total_seconds()

        keys = self.keys()
        figure = Figure(figsize=(9, 0.8 + 0.55 * max(len(keys), 1)))
        axes = figure.subplots()
        for row, key in enumerate(keys):
            for number, span in enumerate(self.of(key)):
                begin, end = span.started or span.created, span.completed or _now()
                if begin > span.created:  # queued behind the key's previous event
                    axes.barh(row + 0.3, seconds(begin) - seconds(span.created),
                              left=seconds(span.created), height=0.12, color="#aaaaaa", zorder=1)
                axes.barh(row, seconds(end) - seconds(begin), left=seconds(begin), height=0.45,
                          color=("#4c72b0", "#55a868")[number % 2], edgecolor="black", zorder=2)
                for sleep_start, sleep_end in span.sleeps:
                    axes.barh(row, seconds(min(sleep_end, end)) - seconds(sleep_start),
                              left=seconds(sleep_start), height=0.45, fill=False, hatch="///",
                              edgecolor="white", linewidth=0, zorder=3)
        axes.set_yticks(range(len(keys)), keys)
        axes.invert_yaxis()
        axes.set_xlabel(f"seconds since {origin:%H:%M:%S} UTC")
        axes.set_title(f"{self.service}, one row per key: a bar per event (colours alternate), "
                       "hatched = durable sleep, grey line = queued behind the key's previous "
                       "event", fontsize=8)
        figure.tight_layout()
        return figure

    def _repr_png_(self) -> bytes | None:
        if not self.spans:
            return None
        import io

        buffer = io.BytesIO()
        self.figure().savefig(buffer, format="png", dpi=100)
        return buffer.getvalue()

    def __str__(self) -> str:
        if not self.spans:
            return f"{self.service}: no invocations"
        start, end = self._bounds()
        total = max((end - start).total_seconds(), 1e-3)
        width = 60

        def col(moment: datetime) -> int:
            return min(width, round((moment - start).total_seconds() / total * width))

        lines = [f"{self.service} over {total:.1f} s  (. queued  # running  z sleeping)"]
        for key in self.keys():
            for span in self.of(key):
                bar = [" "] * (width + 1)
                begin, stop = span.started or span.created, span.completed or _now()
                for i in range(col(span.created), col(begin)):
                    bar[i] = "."
                for i in range(col(begin), col(stop) + 1):
                    bar[i] = "#"
                for sleep_start, sleep_end in span.sleeps:
                    for i in range(col(sleep_start), col(min(sleep_end, stop))):
                        bar[i] = "z"
                lines.append(f"{key:>12} |{''.join(bar)}| {span.status}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)


def timeline(admin: AdminClient, service: str) -> Timeline:
    """Every invocation of ``service`` as a span per key, with its durable sleeps."""
    rows = admin.sql(
        "SELECT id, target_service_key, status, created_at, running_at, completed_at"
        f" FROM sys_invocation WHERE target_service_name = {sql_string(service)}"
    )
    sleeps: dict[str, list[tuple[datetime, datetime]]] = {}
    if rows:
        for entry in admin.sql(
                "SELECT j.id, j.appended_at, j.entry_json FROM sys_journal j"
                " JOIN sys_invocation i ON j.id = i.id"
                f" WHERE i.target_service_name = {sql_string(service)}"
                " AND j.entry_type = 'Command: Sleep'"):
            wake = _variant(json.loads(entry["entry_json"])).get("wake_up_time")
            if isinstance(wake, int):
                sleeps.setdefault(entry["id"], []).append(
                    (parse_time(entry["appended_at"]),
                     datetime.fromtimestamp(wake / 1000, timezone.utc)))
    spans = [Span(key=row["target_service_key"], invocation_id=row["id"], status=row["status"],
                  created=parse_time(row["created_at"]),
                  started=parse_time(row.get("running_at")),
                  completed=parse_time(row.get("completed_at")),
                  sleeps=sleeps.get(row["id"], []))
             for row in rows]
    return Timeline(service, spans)


WATERFALL_WIDTH = 40


def waterfall(admin: AdminClient, invocation_id: str) -> Table:
    """Where one invocation's time went, from Restate's own records: each invocation it called,
    from created to completed (``█``), and each journal entry at the moment it was appended
    (``│``) — in ms from the invocation's creation, on a scale of the whole invocation."""
    me = sql_string(invocation_id)
    [invocation] = admin.sql("SELECT target, created_at, completed_at FROM sys_invocation"
                             f" WHERE id = {me}")
    start = parse_time(invocation["created_at"])
    end = parse_time(invocation.get("completed_at")) or _now()
    spans: list[tuple[str, datetime, datetime | None]] = [
        (f"call {row['target']}", parse_time(row["created_at"]),
         parse_time(row.get("completed_at")) or end)
        for row in admin.sql("SELECT target, created_at, completed_at FROM sys_invocation"
                             f" WHERE invoked_by_id = {me}")]
    spans += [(f"#{row['index']} {row['entry_type']} {row.get('name') or ''}".rstrip(),
               parse_time(row["appended_at"]), None)
              for row in admin.sql("SELECT index, entry_type, name, appended_at FROM sys_journal"
                                   f" WHERE id = {me} ORDER BY index") if row.get("appended_at")]
    total = max((end - start).total_seconds(), 0.001)
    rows = [{"what": invocation["target"], "at_ms": 0.0, "took_ms": round(total * 1000, 1),
             "bar": "█" * WATERFALL_WIDTH}]
    for what, begin, finish in sorted(spans, key=lambda span: span[1]):
        bar = _bar((begin - start).total_seconds(),
                   None if finish is None else (finish - start).total_seconds(), total)
        rows.append({"what": what, "at_ms": round((begin - start).total_seconds() * 1000, 1),
                     "took_ms": None if finish is None
                     else round((finish - begin).total_seconds() * 1000, 1), "bar": bar})
    return Table(f"Where the time went: {invocation_id} ({total * 1000:.0f} ms in Restate)",
                 ["what", "at_ms", "took_ms", "bar"], rows, link=ui_link(admin, invocation_id))


def _bar(begin: float, finish: float | None, total: float, width: int = WATERFALL_WIDTH) -> str:
    """On a time axis of ``width`` characters for ``total``: █ from ``begin`` to ``finish`` (one
    at least), or │ at ``begin`` for a moment (``finish`` None)."""
    def column(at: float) -> int:
        return min(max(int(at / total * width), 0), width - 1)

    if finish is None:
        return " " * column(begin) + "│"
    return " " * column(begin) + "█" * max(1, column(finish) - column(begin))


def parse_time(value: Any) -> Any:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _now() -> datetime:
    return datetime.now(timezone.utc)


def trace(traces: TraceCollector | None, invocation_id: str, width: int = WATERFALL_WIDTH,
          timeout: float = 30.0) -> Table:
    """The trace of ``invocation_id``, as the lab's trace collector received it: a row per
    span, under its parent, its bar on the trace's time axis — ✗ where it failed — and under
    each attempt the steps it journaled (``│``: when). Waits until restate-server has sent the
    invocation's end."""
    from . import tracing

    if traces is None:
        raise LabError("This lab collects no traces: start it with traces=True, e.g. "
                       "Lab.shared([...], traces=True), to draw them.")

    def ended(spans: list[TraceSpan]) -> bool:
        return any(s.name.startswith("invocation-end")
                   and s.attributes.get("restate.invocation.id") == invocation_id for s in spans)

    spans = traces.wait_for(ended, timeout, f"the trace of {invocation_id}")
    tracing.flush()  # the service host's last spans
    trace_id = next(s.trace_id for s in spans if ended([s]))
    spans = traces.spans(trace_id)
    ids = {s.span_id for s in spans}
    children: dict[str, list[TraceSpan]] = {}
    for span in spans:  # in order of start: a parent's children too
        children.setdefault(span.parent_id if span.parent_id in ids else "", []).append(span)
    start, end = min(s.start for s in spans), max(s.end for s in spans)
    total = max(end - start, 1)
    rows: list[dict[str, Any]] = []

    def add(parent: str, depth: int) -> None:
        for span in children.get(parent, []):
            bar = _bar(span.start - start, span.end - start, total, width)
            rows.append({"span": "  " * depth + span.name, "name": span.name,
                         "from": "Restate" if span.service == "Restate" else "service host",
                         "at (ms)": round((span.start - start) / 1e6),
                         "took (ms)": round((span.end - span.start) / 1e6, 1),
                         "error": span.error, "timeline": bar + (" ✗" if span.error else ""),
                         "attributes": span.attributes})
            for _, at, attributes in span.events:  # the steps (ctx.run) it journaled
                if step := attributes.get("restate.journal.command.name"):
                    rows.append({"span": "  " * (depth + 1) + f"· step {step!r}", "name": step,
                                 "from": "Restate", "at (ms)": round((at - start) / 1e6),
                                 "error": False, "attributes": attributes,
                                 "timeline": _bar(at - start, None, total, width)})
            add(span.span_id, depth + 1)

    add("", 0)
    return Table(f"Trace {trace_id} ({len(spans)} spans, {(end - start) / 1e6:.0f} ms)",
                 ["span", "from", "at (ms)", "took (ms)", "timeline"], rows)


# Labels every sample of a one-node lab carries: left out of the view.
_LAB_LABELS = re.compile(r'(cluster_name|node_name|node_id)="[^"]*",?')


def metrics_moved(before: dict[str, float], after: dict[str, float],
                  contains: str = "") -> Table:
    """The counters (``…_total``) whose name has ``contains`` that moved between two readings
    of restate-server's metrics (``lab.server.metrics()``), most first."""
    def number(value: float) -> float | int:
        return int(value) if float(value).is_integer() else value

    moved = [{"counter": _LAB_LABELS.sub("", name).replace("{}", ""),
              "before": number(before.get(name, 0)), "after": number(value),
              "moved by": number(value - before.get(name, 0))}
             for name, value in after.items()
             if name.split("{")[0].endswith("_total") and contains in name
             and value != before.get(name, 0)]
    moved.sort(key=lambda row: -row["moved by"])
    return Table(f"Counters that moved ({len(moved)})", ["counter", "before", "after",
                                                          "moved by"], moved)


def retries(admin: AdminClient, invocation_id: str) -> Table:
    """Why an invocation was retried: each failed attempt's error, as Restate recorded it in
    ``sys_journal_events`` (the step it failed in, its message), and its ``sys_invocation``
    row's ``retry_count`` and ``last_failure`` in the title."""
    me = sql_string(invocation_id)
    rows = []
    for row in admin.sql("SELECT appended_at, event_type, after_journal_entry_index, event_json"
                         f" FROM sys_journal_events WHERE id = {me} ORDER BY appended_at"):
        event = json.loads(row["event_json"])
        rows.append({"at": _time(row["appended_at"]), "event": row["event_type"],
                     "after entry": row["after_journal_entry_index"],
                     "step": event.get("related_command_name") or "",
                     "error": f"{event.get('error_code', '')} {event.get('error_message', '')}"})
    [invocation] = admin.sql("SELECT status, retry_count, last_failure FROM sys_invocation"
                             f" WHERE id = {me}") or [{}]
    now = ", ".join(f"{name} {str(invocation[name]).splitlines()[0]}"
                    for name in ("status", "retry_count", "last_failure")
                    if invocation.get(name) is not None)
    return Table(f"Retries of {invocation_id} ({now})",
                 ["at", "event", "after entry", "step", "error"], rows,
                 link=ui_link(admin, invocation_id))


#: The operator's question "which invocations are stuck, and why?" as one query: paused (their
#: retry policy gave up for now) or retried three times and more — each with the errors Restate
#: kept in sys_journal_events (those survive a restart; retry_count and last_failure are the
#: invoker's memory, and a paused invocation shows no last_failure).
STUCK_QUERY = """SELECT i.id, i.target, i.status, i.retry_count, e.appended_at AS failed_at,
       e.event_json
FROM sys_invocation i
     LEFT JOIN sys_journal_events e ON e.id = i.id AND e.event_type = 'TransientError'
WHERE i.status = 'paused' OR (i.status = 'backing-off' AND i.retry_count >= 3)
ORDER BY i.id, e.appended_at"""


def stuck(admin: AdminClient, query: str = STUCK_QUERY) -> Table:
    """The invocations ``query`` (default: STUCK_QUERY) finds, with their errors, readable."""
    rows = []
    for row in admin.sql(query):
        event = json.loads(row.pop("event_json", None) or "{}")
        step = event.get("related_command_name")
        rows.append({**row, "failed_at": _time(row.get("failed_at")),
                     "why": (f"in step {step!r}: " if step else "")
                     + str(event.get("error_message", ""))})
    return Table("Stuck invocations", ["id", "target", "status", "retry_count", "failed_at",
                                       "why"], rows)
