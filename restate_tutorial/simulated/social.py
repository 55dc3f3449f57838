"""Simulated social-media backend and content-moderation service (stand-ins, not Restate).

Moderation is deterministic: a post is "PENDING" until it has been checked a set number of
times (``moderation.checks_needed``, per user if scripted), then "DONE".
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from typing import Any

from .ledger import Ledger, ScriptedFailures


class SocialMedia:
    def __init__(self) -> None:
        self.ledger = Ledger("social-media")
        self.failures = ScriptedFailures()
        self._by_request: dict[str, str] = {}  # request id → post id
        self._lock = threading.Lock()

    def create_post(self, user_id: str, post: dict[str, Any], request_id: str) -> str:
        """Create a post; the same ``request_id`` again returns the same post (idempotent)."""
        self.failures.check("create_post")
        with self._lock:  # check and record at once: two overlapping repeats create one post
            post_id = self._by_request.get(request_id)
            if post_id is not None:
                self.ledger.record("create_post (repeated)", post_id=post_id, user_id=user_id)
            else:
                post_id = self._by_request[request_id] = str(uuid.uuid4())
                self.ledger.record("create_post", post_id=post_id, user_id=user_id,
                                   request_id=request_id, **post)
        self.failures.check_answer("create_post")
        return post_id

    def update_feed(self, user_id: str, post_id: str) -> None:
        """Add the post to the user's feed, once (a post already there is left alone)."""
        self.failures.check("update_feed")
        with self._lock:
            repeated = post_id in self.feed(user_id)
            self.ledger.record("update_feed (repeated)" if repeated else "update_feed",
                               post_id=post_id, user_id=user_id)
        self.failures.check_answer("update_feed")

    def feed(self, user_id: str) -> list[str]:
        """The post ids in the user's feed, oldest first."""
        return [e["post_id"] for e in self.ledger.entries("update_feed", user_id=user_id)]


class Moderation:
    def __init__(self, checks_needed: int = 2) -> None:
        self.ledger = Ledger("moderation")
        self.failures = ScriptedFailures()
        self.checks_needed = checks_needed
        self._per_user: dict[str, int] = {}
        self._checks: Counter[str] = Counter()
        self._lock = threading.Lock()

    def script(self, user_id: str, checks_needed: int) -> None:
        """Posts of ``user_id`` stay pending until checked ``checks_needed`` times."""
        with self._lock:
            self._per_user[user_id] = checks_needed

    def status(self, user_id: str, post_id: str) -> str:
        self.failures.check("status")
        with self._lock:
            self._checks[post_id] += 1
            needed = self._per_user.get(user_id, self.checks_needed)
            status = "DONE" if self._checks[post_id] >= needed else "PENDING"
            self.ledger.record("check", post_id=post_id, user_id=user_id, status=status)
        return status

    def reset(self) -> None:
        with self._lock:
            self._per_user.clear()
            self._checks.clear()
        self.ledger.clear()
        self.failures.clear()


social_media = SocialMedia()
moderation = Moderation()


def reset() -> None:
    social_media.ledger.clear()
    social_media.failures.clear()
    moderation.reset()
