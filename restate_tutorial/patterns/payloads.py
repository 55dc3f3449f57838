"""Reading request bodies: a malformed one is a TerminalError with HTTP 400, never a retry.

Public handlers declare ``input_serde=JSON_INPUT``. Unlike the SDK's default JSON serde (whose
parse errors become a 500), it hands the handler a :class:`Malformed` value, and the checks
below turn that into a 400 that says what is wrong. Calls from other handlers
(``ctx.service_call``) serialize through the same serde, as plain JSON.

Why not Pydantic models as handler input types (restate-sdk 1.3 supports them, and a
``ValidationError`` names the field)? The SDK wraps *every* input that fails to deserialize in
``TerminalError("Unable to parse an input argument. …")`` with its default status, 500
(``restate/handler.py``), so a client error would look like a server error. Here the serde never
fails: the checks raise the 400 themselves.

Limits: a body of more than ``MAX_BODY_BYTES`` is refused with 413; with 400, naming the field
and the rule: a text field of more than ``MAX_TEXT_CHARS`` characters, a string that is not valid
Unicode (a lone surrogate such as ``"\\ud800"``), a number that is not finite (``NaN``,
``Infinity``, ``1e400``) or has more than ``MAX_INT_DIGITS`` digits, and nesting deeper than
``MAX_DEPTH`` — all before the handler does anything, so nothing is half-done.
"""

from __future__ import annotations

import json
import math
import unicodedata
from dataclasses import dataclass
from typing import Any

from restate import TerminalError
from restate.serde import Serde

#: The largest request body a tutorial handler reads.
MAX_BODY_BYTES = 64 * 1024
#: The longest text field (a name, a location, a post…).
MAX_TEXT_CHARS = 2_000
#: How deep objects and lists may nest in a request body.
MAX_DEPTH = 32
#: The most digits an integer in a request body may have.
MAX_INT_DIGITS = 30
#: The shortest period, delay or timeout a handler accepts (a shorter one would only spin:
#: a watch every 1e-9 s is ~80 ticks a second, a cron every 1e-300 s overflows).
MIN_SECONDS = 0.1
#: How much of a user's text a log line shows.
LOG_CLIP_CHARS = 80


@dataclass(frozen=True)
class Malformed:
    """A body that is not JSON; ``reason`` says why."""

    reason: str
    status: int = 400


class JsonInput(Serde[Any]):
    def deserialize(self, buf: bytes) -> Any:
        if not buf:
            return None
        if len(buf) > MAX_BODY_BYTES:
            return Malformed(f"the body is {len(buf):,} bytes, more than the limit of "
                             f"{MAX_BODY_BYTES:,}", 413)
        try:
            value = json.loads(buf)
        except RecursionError:
            return Malformed(f"the body nests deeper than the limit of {MAX_DEPTH} levels")
        except (UnicodeDecodeError, ValueError) as error:
            if "digits" in str(error):  # Python's own limit, 4,300 digits
                return Malformed(f"a number in the body has more than {MAX_INT_DIGITS} digits")
            return Malformed(f"the body is not valid JSON ({error})")
        problem = _unsafe(value)
        return Malformed(problem) if problem else value

    def serialize(self, obj: Any) -> bytes:
        return b"" if obj is None else json.dumps(obj).encode()


JSON_INPUT = JsonInput()


def fields(value: Any, what: str, **types: type | tuple[type, ...]) -> dict[str, Any]:
    """``value`` cut down to the fields in ``types``, each type-checked; else TerminalError(400).

    Booleans never pass as numbers (in Python ``True`` is an ``int``).
    """
    _reject_malformed(value, what)
    if not isinstance(value, dict):
        raise TerminalError(f"malformed {what}: expected an object with fields "
                            f"{', '.join(types)}", 400)
    for field, expected in types.items():
        item = value.get(field)
        if not isinstance(item, expected) or isinstance(item, bool):
            raise TerminalError(f"malformed {what}: field {field!r} is missing or of the wrong "
                                "type", 400)
        _check_length(item, f"{what}: field {field!r}")
    return {field: value[field] for field in types}


def text(value: Any, what: str) -> str:
    """``value`` if it is a non-empty JSON string; else TerminalError(400)."""
    _reject_malformed(value, what)
    if not isinstance(value, str) or not value:
        raise TerminalError(f"malformed {what}: expected a JSON string", 400)
    _check_length(value, what)
    return value


def seconds(value: Any, what: str, field: str, maximum: float,
            minimum: float = MIN_SECONDS) -> float:
    """``value`` as a number from ``minimum`` to ``maximum`` (seconds, or a rate); else
    TerminalError(400)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) \
            or not minimum <= value <= maximum:
        raise TerminalError(f"malformed {what}: {field} must be a number from {minimum:g} to "
                            f"{maximum:,}", 400)
    return float(value)


def clip(text: Any, limit: int = LOG_CLIP_CHARS) -> str:
    """``text`` made safe for one log line: control characters (CR, LF, ESC, NUL, …) shown
    escaped (``\\r``, ``\\x1b``), not sent, and cut to ``limit`` characters ("…" marks the cut)."""
    shown = "".join(_escaped(char) for char in str(text)[:limit])
    return shown if len(shown) <= limit and len(str(text)) <= limit else f"{shown[:limit - 1]}…"


def _escaped(char: str) -> str:
    if unicodedata.category(char) in ("Cc", "Cf", "Cs", "Zl", "Zp"):
        return char.encode("unicode_escape", "backslashreplace").decode("ascii")
    return char


def _unsafe(value: Any) -> str | None:
    """Why ``value`` (parsed JSON) cannot be handled safely, naming where; None if it can."""
    todo: list[tuple[str, Any, int]] = [("", value, 0)]
    while todo:
        path, item, depth = todo.pop()
        where = f"field {path!r}" if path else "the body"
        if depth > MAX_DEPTH:
            return f"the body nests deeper than the limit of {MAX_DEPTH} levels"
        if isinstance(item, float) and not math.isfinite(item):
            return f"{where} is not a finite number ({item})"
        if isinstance(item, int) and not isinstance(item, bool) \
                and abs(item) >= 10 ** MAX_INT_DIGITS:
            return f"{where} has more than {MAX_INT_DIGITS} digits"
        if isinstance(item, str) and not _valid_unicode(item):
            return f"{where} is not valid Unicode (it holds a lone surrogate)"
        if isinstance(item, dict):
            for key, inner in item.items():
                if not _valid_unicode(key):
                    return f"a field name in {where} is not valid Unicode"
                todo.append((f"{path}.{key}" if path else key, inner, depth + 1))
        elif isinstance(item, list):
            todo.extend((f"{path}[{i}]", inner, depth + 1) for i, inner in enumerate(item))
    return None


def _valid_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_length(value: Any, what: str) -> None:
    if isinstance(value, str) and len(value) > MAX_TEXT_CHARS:
        raise TerminalError(f"malformed {what}: {len(value):,} characters, more than the limit "
                            f"of {MAX_TEXT_CHARS:,}", 400)


def _reject_malformed(value: Any, what: str) -> None:
    if isinstance(value, Malformed):
        raise TerminalError(f"malformed {what}: {value.reason}", value.status)
