"""What the handlers logged, kept in memory so a notebook cell can show it.

Handlers log through ``restate.getLogger("restate_tutorial…")``, which drops lines while a
handler replays its journal: a line appears once per real execution, as in the seed's logs.
In a notebook a handler's ``print`` lands under whichever cell happens to run; the logbook
lets the cell that drives a scenario show exactly the lines of that scenario.
"""

from __future__ import annotations

import logging
import threading
import time


class Logbook(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self._lines: list[tuple[float, str]] = []
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        stamp = time.strftime("%Y/%m/%d %H:%M:%S", time.localtime(record.created))
        with self._guard:
            self._lines.append((record.created,
                                f"{stamp} {record.levelname} {record.getMessage()}"))

    def mark(self) -> float:
        """A point in time; ``lines(since=mark)`` returns what was logged after it."""
        return time.time()

    def lines(self, since: float = 0.0, containing: str = "") -> list[str]:
        with self._guard:
            return [line for at, line in self._lines if at >= since and containing in line]

    def show(self, since: float = 0.0) -> None:
        print("\n".join(self.lines(since)) or "(nothing logged)")


class OneLineRetries(logging.Filter):
    """The SDK logs each failed attempt with a long traceback; keep the one line that matters."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if error is not None:
            lines = str(error).splitlines()
            related = next((line for line in lines if line.startswith("Related command")), "")
            record.msg = f"Attempt failed, Restate will retry: {lines[0] if lines else error!r}"
            record.msg += f" ({related})" if related else ""
            record.args, record.exc_info, record.exc_text = (), None, None
        return True


logbook = Logbook()
logbook.addFilter(OneLineRetries())
_tutorial = logging.getLogger("restate_tutorial")
_tutorial.setLevel(logging.INFO)
_tutorial.addHandler(logbook)
# The Restate SDK's own warnings (failed attempts) go to the logbook too, as one line each,
# instead of tracebacks printed under whatever notebook cell happens to run.
_sdk = logging.getLogger("restate")
_sdk.addHandler(logbook)
_sdk.propagate = False
