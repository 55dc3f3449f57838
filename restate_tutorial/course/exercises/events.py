"""Checks for the exercises of notebook 02 (transactional event processing)."""

from __future__ import annotations

import time
import uuid

from ... import views
from ...lab import IngressError, Lab, wait_until
from ...patterns import event_transactions
from ...simulated.social import moderation, social_media
from . import checking
from .checking import HOST, SERVER, check, crash, expect, settle

POST = {"content": "Checking the exercise", "metadata": "public"}


def _sleep_lengths(lab: Lab, invocation: str) -> list[float]:
    """How long each durable sleep of the invocation was (seconds), from its journal."""
    rows = lab.admin.sql("SELECT appended_at, entry_json FROM sys_journal WHERE entry_type = "
                         f"'Command: Sleep' AND id = {views.sql_string(invocation)} ORDER BY index")
    return [views.wake_up_time(row["entry_json"]).timestamp()
            - views.parse_time(row["appended_at"]).timestamp() for row in rows]


def _sleep_left(lab: Lab, invocation: str) -> float:
    """Seconds until the invocation's first durable sleep ends (0 if it has none or ended)."""
    rows = lab.admin.sql("SELECT entry_json FROM sys_journal WHERE entry_type = 'Command: Sleep'"
                         f" AND id = {views.sql_string(invocation)} ORDER BY index LIMIT 1")
    return max(0.0, views.wake_up_time(rows[0]["entry_json"]).timestamp() - time.time()) \
        if rows else 0.0


def _ended(lab: Lab, invocation: str) -> bool:
    rows = lab.admin.sql(f"SELECT status FROM sys_invocation WHERE id = "
                         f"{views.sql_string(invocation)}")
    return bool(rows) and rows[0]["status"] in ("completed", "backing-off", "paused")


@check("Exercise 2.1 · back off between moderation checks")
def check_backoff(lab: Lab) -> None:
    user = f"patient-{uuid.uuid4().hex[:6]}"
    moderation.script(user, 3)  # pending, pending, done: two sleeps
    invocation = lab.ingress.send("PatientUserFeed", "ProcessPost", POST, key=user)
    first = event_transactions.poll_interval.total_seconds()
    # The first sleep is judged as soon as it is journaled (its wake-up time is in the entry):
    # a wrong one is reported at once, not after every sleep has run.
    wait_until(lambda: bool(_sleep_lengths(lab, invocation)) or _ended(lab, invocation),
               checking.ANSWER_SECONDS, "the first durable sleep", interval=0.1)
    lengths = _sleep_lengths(lab, invocation)
    if lengths and not 0.8 * first <= lengths[0] <= 1.4 * first:
        lab.admin.kill(invocation)
        expect(False, f"the first sleep as long as the interval ({first:g} s)",
               f"a first sleep of {lengths[0]:.2f} s",
               "sleep for the interval first, and double it only after that sleep")
    # A crash while the sleep has time left: not while the next check runs (a repeated
    # moderation check counts as one more check).
    if _sleep_left(lab, invocation) > 0.2:  # a restart takes ~0.1 s
        crash(lab, HOST, "during the first sleep")
    settle(lab, invocation, "PatientUserFeed/ProcessPost")
    expect(len(social_media.feed(user)) == 1, "the post in the feed once moderation is done",
           f"the feed of {user}: {social_media.feed(user)}", "keep the feed update at the end")
    lengths = _sleep_lengths(lab, invocation)
    shown = ", ".join(f"{s:.2f} s" for s in lengths)
    expect(len(lengths) == 2, "two durable sleeps (between three checks)",
           f"{len(lengths)} sleeps: {shown}", "sleep once after each PENDING answer")
    ratio = lengths[1] / lengths[0]
    expect(1.6 < ratio < 2.5, "the second sleep twice as long as the first",
           f"sleeps of {shown}", "double the interval after each sleep (interval *= 2); a "
           "plain local variable is fine: on replay it is recomputed the same way")


@check("Exercise 2.2 · give up on moderation after 3 checks")
def check_give_up(lab: Lab) -> None:
    slow, quick = (f"{name}-{uuid.uuid4().hex[:6]}" for name in ("never", "quick"))
    moderation.script(slow, 4)  # done at the 4th check: one too many
    moderation.script(quick, 2)
    invocation = lab.ingress.send("StrictUserFeed", "ProcessPost", POST, key=slow)
    if checking.eventually(lambda: _sleep_lengths(lab, invocation), checking.ANSWER_SECONDS) \
            and _sleep_left(lab, invocation) > 0.1:  # a SIGKILL lands at once
        crash(lab, SERVER, "during the first sleep")
    try:
        settle(lab, invocation, "StrictUserFeed/ProcessPost")
        rejected = None
    except IngressError as error:
        rejected = error
    checks = moderation.ledger.count("check", user_id=slow)
    expect(rejected is not None, "the post to be rejected: the call fails (a TerminalError)",
           f"it succeeded after {checks} checks",
           "count the checks and raise TerminalError once MAX_CHECKS were PENDING")
    expect(checks == 3, "exactly 3 moderation checks before giving up, although "
           "restate-server crashed during the first sleep",
           f"{checks} checks", "count the checks in a plain local variable of the handler (a "
           "replay counts the same journaled checks again; a count in memory outside the "
           "handler counts them twice), and give up right after the third PENDING answer, "
           "without a last sleep")
    expect(social_media.feed(slow) == [], "the feed untouched for a rejected post",
           f"the feed has {social_media.feed(slow)}", "raise before the feed update")
    checking.answer(lab, "StrictUserFeed", "ProcessPost", POST, key=quick)
    expect(len(social_media.feed(quick)) == 1, "a post moderated in time still reaches the feed",
           f"the feed of {quick}: {social_media.feed(quick)}",
           "only give up after MAX_CHECKS pending answers")
