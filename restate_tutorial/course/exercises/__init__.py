"""The "Your turn" exercises of notebooks 01–03 and 07–10: each check drives a scenario
against the lab and reads the simulated systems' ledgers and Restate's records. It never
raises: it returns a :class:`CheckResult` — passed, or what was expected, what happened and a
hint."""

from .agentic import check_email_tool, check_spend_cap
from .checking import CheckResult, show
from .enrichment import check_delivered, check_early_updates
from .events import check_backoff, check_give_up
from .many import check_first_three, check_paced_search
from .sagas import check_hotel_saga, check_loyalty_points
from .timing import check_give_up_watch, check_snooze
from .waiting import check_escalation, check_withdraw

__all__ = ["CheckResult", "check_backoff", "check_delivered", "check_early_updates",
           "check_email_tool", "check_escalation", "check_first_three", "check_give_up",
           "check_give_up_watch",
           "check_hotel_saga", "check_loyalty_points", "check_paced_search", "check_snooze",
           "check_spend_cap", "check_withdraw", "show"]
