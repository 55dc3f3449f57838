"""Reading request bodies: a malformed one is a TerminalError with HTTP 400, never a retry."""

from __future__ import annotations

import json
from typing import Any

from restate import TerminalError


def parse_json(raw: bytes | None, what: str) -> Any:
    """``raw`` (a handler's raw input) as JSON; TerminalError(400) naming ``what`` if it is not.

    Handlers that take ``bytes`` and call this answer 400 for bad JSON; with the SDK's own
    JSON parsing the caller would get a 500.
    """
    try:
        return json.loads(raw or b"null")
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise TerminalError(f"malformed {what}: the body is not valid JSON ({error})",
                            400) from None


def fields(value: Any, what: str, **types: type | tuple[type, ...]) -> dict[str, Any]:
    """``value`` cut down to the fields in ``types``, each type-checked; else TerminalError(400).

    Booleans never pass as numbers (in Python ``True`` is an ``int``).
    """
    if not isinstance(value, dict):
        raise TerminalError(f"malformed {what}: expected an object with fields "
                            f"{', '.join(types)}", 400)
    for field, expected in types.items():
        item = value.get(field)
        if not isinstance(item, expected) or isinstance(item, bool):
            raise TerminalError(f"malformed {what}: field {field!r} is missing or of the wrong "
                                "type", 400)
    return {field: value[field] for field in types}
