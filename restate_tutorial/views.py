"""Views of what Restate recorded: invocations, one invocation's journal, state.

Each view is a :class:`Table` that renders as HTML in Jupyter and as plain text in a terminal
(``print(view)``). The data comes only from Restate's SQL introspection API.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from typing import Any

from .lab.admin import AdminClient


class Table:
    """Rows (dicts) with named columns; ``_repr_html_`` for Jupyter, ``str`` for terminals."""

    def __init__(self, title: str, columns: Sequence[str], rows: list[dict[str, Any]]) -> None:
        self.title = title
        self.columns = list(columns)
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.rows[index]

    def column(self, name: str) -> list[Any]:
        return [row.get(name) for row in self.rows]

    def _cells(self, row: dict[str, Any]) -> list[str]:
        return ["" if row.get(c) is None else str(row[c]) for c in self.columns]

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
        body = "".join(
            "<tr>" + "".join(f"<td style='text-align:left;font-family:monospace'>"
                             f"{html.escape(v)}</td>" for v in self._cells(row)) + "</tr>"
            for row in self.rows
        ) or f"<tr><td colspan='{len(self.columns)}'><i>no rows</i></td></tr>"
        return (f"<b>{html.escape(self.title)}</b><table><thead><tr>{head}</tr></thead>"
                f"<tbody>{body}</tbody></table>")

    def __repr__(self) -> str:
        return str(self)


def _clip(value: str, width: int) -> str:
    value = value.replace("\n", " ")
    return value if len(value) <= width else value[: width - 1] + "…"


def sql_string(value: str) -> str:
    """``value`` as a SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def _where(**equals: str | None) -> str:
    clauses = [f"{column} = {sql_string(v)}" for column, v in equals.items() if v is not None]
    return f" WHERE {' AND '.join(clauses)}" if clauses else ""


def invocations(admin: AdminClient, service: str | None = None, key: str | None = None,
                handler: str | None = None, status: str | None = None) -> Table:
    """Invocations Restate knows of, oldest first, filterable by service/key/handler/status."""
    rows = admin.sql(
        "SELECT id, target, status, invoked_by, invoked_by_subscription_id, retry_count,"
        " journal_size, created_at, completed_at, completion_failure, last_failure"
        " FROM sys_invocation" + _where(target_service_name=service, target_service_key=key,
                                        target_handler_name=handler, status=status)
        + " ORDER BY created_at"
    )
    for row in rows:
        row["via"] = "kafka" if row.get("invoked_by_subscription_id") else row.get("invoked_by")
        row["failure"] = row.get("completion_failure") or row.get("last_failure")
        row["created"] = _time(row.get("created_at"))
        row["completed"] = _time(row.get("completed_at"))
    return Table(f"Invocations ({len(rows)})", ["id", "target", "status", "via", "retry_count",
                                                 "journal_size", "created", "completed", "failure"],
                 rows)


def journal(admin: AdminClient, invocation_id: str) -> Table:
    """The journal of one invocation: what Restate recorded, entry by entry."""
    rows = admin.sql(
        "SELECT index, entry_type, name, appended_at, entry_json FROM sys_journal"
        f" WHERE id = {sql_string(invocation_id)} ORDER BY index"
    )
    for row in rows:
        row["appended"] = _time(row.get("appended_at"))
        row["detail"] = entry_detail(row.get("entry_json"))
    return Table(f"Journal of {invocation_id} ({len(rows)} entries)",
                 ["index", "entry_type", "name", "appended", "detail"], rows)


def state(admin: AdminClient, service: str, key: str | None = None) -> Table:
    """The K/V state Restate keeps for a virtual object/workflow (one key, or all keys)."""
    rows = admin.sql("SELECT service_key, key, value_utf8 FROM state"
                     + _where(service_name=service, service_key=key)
                     + " ORDER BY service_key, key")
    for row in rows:
        row["value"] = row.pop("value_utf8")
    title = f"State of {service}" + (f"/{key}" if key is not None else "")
    return Table(title, ["service_key", "key", "value"], rows)


def _time(value: Any) -> str | None:
    """'2026-11-28T18:06:39.620Z' → '18:06:39.620' (UTC)."""
    if not value:
        return None
    text = str(value)
    return text[11:23] if len(text) >= 23 else text


def millis_to_time(millis: int) -> str:
    return datetime.fromtimestamp(millis / 1000, timezone.utc).strftime("%H:%M:%S.%f")[:-3]


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
        parts.append(item if field in {"payload", "value", "result"} else f"{field}={item}")
    return ", ".join(parts)


def _outcome(value: dict[str, Any]) -> str:
    if "Failure" in value:
        failure = value["Failure"] or {}
        return f"✗ [{failure.get('code')}] {failure.get('message')}"
    success = value.get("Success")
    return f"✓ {success}" if success not in (None, [], "") else "✓"


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
