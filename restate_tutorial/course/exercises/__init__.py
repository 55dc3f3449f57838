"""The "Your turn" exercises of notebooks 01–03 and 07–13: each check drives a scenario
against the lab and reads the simulated systems' ledgers and Restate's records. It never
raises: it returns a :class:`CheckResult` — passed, or what was expected, what happened and a
hint.

The standard every check meets (Parts I–III; a new notebook's checks too):

- A check drives a scenario against the running lab and proves the exercise's promise on the
  simulated systems' ledgers and on Restate's records; it returns a :class:`CheckResult` and
  never raises.
- **It crashes the answer the way the course teaches**: a code that merely worked once must
  not pass. At the moments that matter for the lesson, it restarts the service host
  (``checking.crash``: the handlers in flight are cut off and Restate replays their journals) or
  SIGKILLs restate-server — during a wait, after an effect — or loses a simulated system's
  answer (the effect happened, its step is retried). An effect outside a journaled step then
  shows twice on a ledger, a count kept in memory counts a replay twice, a timer that is not
  durable starts again; where a crash cannot show it (memory survives a restart of a host
  inside this kernel), the check reads Restate's records instead: the wait in the journal, the
  total in the object's state. Its "happened" says what the crash revealed, and its hint names
  the fix (``ctx.run``, ``ctx.get``/``ctx.set``, ``ctx.sleep`` raced with ``restate.select``…)
  rather than repeating the task. Every contract a check tests is stated in the exercise.
- It must say "not yet" to the unchanged starter **and** to the plausible wrong answers (at
  least three per exercise): choose the scenario that exposes each one (a second, separate
  request where a key derived from the request would merge two; a cancel or a terminal failure
  during the very step whose compensation is pushed; an exact hit of a limit where ``>`` was
  meant as ``>=``). ``tests/course/test_exercises.py`` keeps those wrong answers as test cases,
  and the solution, and a correct answer that differs from it in details, must pass.
- It answers in seconds (about 15 at most) and leaves nothing running: the learner's handler
  is called through ``checking.answer``, which watches Restate's record of the invocation. A handler
  that fails and is retried is reported at once with its failure and the fix (a plain exception
  where a ``TerminalError`` was meant is named as such), and the invocation is killed. A slow
  answer (durable sleeps) prints a progress line every few seconds; none waits more than
  ``ANSWER_SECONDS``. Whatever the answer did, what the check started and is still running
  when it ends is killed (``checking.check``).
"""

from .agentic import check_email_tool, check_spend_cap
from .checking import CheckResult, show
from .enrichment import check_delivered, check_early_updates
from .events import check_backoff, check_give_up
from .many import check_first_three, check_paced_search
from .own_database import check_daily_limit, check_refund
from .sagas import check_hotel_saga, check_loyalty_points
from .security import check_decision_token, check_key_rotation
from .seeing import check_span_once, check_stuck_query
from .timing import check_give_up_watch, check_snooze
from .waiting import check_escalation, check_withdraw

__all__ = ["CheckResult", "check_backoff", "check_daily_limit", "check_decision_token",
           "check_delivered", "check_early_updates", "check_key_rotation",
           "check_email_tool", "check_escalation", "check_first_three", "check_give_up",
           "check_give_up_watch",
           "check_hotel_saga", "check_loyalty_points", "check_paced_search", "check_refund",
           "check_snooze", "check_span_once",
           "check_spend_cap", "check_stuck_query", "check_withdraw", "show"]
