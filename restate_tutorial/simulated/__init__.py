"""Simulated downstream systems (flight API, payment API, mailer…): NOT part of Restate.

They stand in for the external systems a real service would call. Each keeps a ledger of every
call it received, so tests and notebooks can prove what happened, and how often.
"""

from .ledger import Ledger, ScriptedFailures, TransientFailure

__all__ = ["Ledger", "ScriptedFailures", "TransientFailure"]
