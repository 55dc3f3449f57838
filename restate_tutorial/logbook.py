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


logbook = Logbook()
_logger = logging.getLogger("restate_tutorial")
_logger.setLevel(logging.INFO)
_logger.addHandler(logbook)
