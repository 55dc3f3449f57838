"""The one exception the lab raises: a single sentence saying what is wrong and how to fix it."""

from __future__ import annotations


class LabError(RuntimeError):
    """Something in the lab is wrong; ``str(error)`` says what and how to fix it."""


class IngressError(LabError):
    """Restate's ingress answered with an error; ``message`` is Restate's own text."""

    def __init__(self, status: int, message: str, target: str) -> None:
        super().__init__(f"{target} failed with HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.target = target
