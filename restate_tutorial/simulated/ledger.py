"""Ledgers of side effects, and failures scripted on purpose."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any


class Ledger:
    """Every call a simulated system received, in order (thread-safe: handlers run elsewhere)."""

    def __init__(self, system: str) -> None:
        self.system = system
        self._entries: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def record(self, action: str, **fields: Any) -> dict[str, Any]:
        entry = {"at": time.time(), "system": self.system, "action": action, **fields}
        with self._lock:
            self._entries.append(entry)
        return entry

    def entries(self, action: str | None = None, **match: Any) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self._entries
                    if (action is None or e["action"] == action)
                    and all(e.get(k) == v for k, v in match.items())]

    def count(self, action: str | None = None, **match: Any) -> int:
        return len(self.entries(action, **match))

    def history(self, **match: Any) -> list[str]:
        """Every matching entry, in order, as its action and its effect if it has one:
        ``["reserve", "cancel [cancelled]", "cancel [already cancelled]"]``. Unlike ``count``,
        it shows repeats of every kind — "(repeated)" actions and "already …" effects."""
        return [e["action"] + (f" [{e['effect']}]" if "effect" in e else "")
                for e in self.entries(**match)]

    def counts(self) -> Counter[str]:
        return Counter(e["action"] for e in self.entries())

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __repr__(self) -> str:
        return f"Ledger({self.system}: {dict(self.counts())})"


class TransientFailure(RuntimeError):
    """A failure a retry can fix (Restate retries it; it is not a TerminalError)."""


class ScriptedFailures:
    """"Fail the next N calls of X", so failure demos are deterministic, never random.

    A failure comes either before the call takes effect (``fail_next``) or after it, as if the
    answer got lost on the way back (``lose_answer_next``): the caller cannot tell the two
    apart, which is why every step of the tutorial's services is safe to repeat.
    """

    def __init__(self) -> None:
        self._pending: Counter[tuple[str, bool]] = Counter()
        self._fired: Counter[tuple[str, bool]] = Counter()
        self._lock = threading.Lock()

    def fail_next(self, call: str, times: int = 1) -> None:
        with self._lock:
            self._pending[call, False] += times

    def lose_answer_next(self, call: str, times: int = 1) -> None:
        """The next ``times`` calls of ``call`` take effect, then fail all the same."""
        with self._lock:
            self._pending[call, True] += times

    def check(self, call: str) -> None:
        """Raise TransientFailure if a failure of ``call`` is scripted (and use it up)."""
        self._use(call, False, f"scripted transient failure of {call}")

    def check_answer(self, call: str) -> None:
        """Called once ``call`` has taken effect: raise if its answer is to be lost."""
        self._use(call, True, f"scripted lost answer of {call} (it did take effect)")

    def _use(self, call: str, lost_answer: bool, message: str) -> None:
        with self._lock:
            if self._pending[call, lost_answer] <= 0:
                return
            self._pending[call, lost_answer] -= 1
            self._fired[call, lost_answer] += 1
        raise TransientFailure(message)

    def fired(self, call: str, lost_answer: bool = False) -> int:
        """How many scripted failures of ``call`` have happened."""
        with self._lock:
            return self._fired[call, lost_answer]

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()
            self._fired.clear()
