"""Triggers (the triggerer's event loop): the review watcher's wait, and a step's wait for a
suspended service.

`ReviewFeedTrigger` is the one trigger behind every proposal in review: it asks the governance
service for decisions taken since a cursor, one request per poll whatever the number of proposals
waiting, and fires when there are some or when a review deadline (or reminder) falls due.

`SuspensionLiftedTrigger` is a step held back by governance's kill switch (design.md §9): it fires
once no suspension covers its service, or when it has waited too long. However many steps wait,
the triggerer asks governance for its suspensions once per poll (`SuspensionBoard`).

They import everything at the top: an import inside run() would block the triggerer's loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from hms_management.domain.services import DECISION_FEED, GOVERNANCE, SUSPENSIONS_ENDPOINT, ServiceError
from hms_management.orchestration.hook import HmsAsyncHook

DUE = "due"
DECIDED = "decided"
# After a failed poll, the next waits longer, up to this; the feed loses nothing meanwhile.
LONGEST_RETRY_SECONDS = 60.0


class ReviewFeedTrigger(BaseTrigger):
    """Wait until governance has decided a review since `cursor`, or until `due_at` (epoch seconds)."""

    def __init__(self, *, cursor: str | None, due_at: float, poll_seconds: float) -> None:
        super().__init__()
        self.cursor = cursor
        self.due_at = due_at
        self.poll_seconds = poll_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"cursor": self.cursor, "due_at": self.due_at, "poll_seconds": self.poll_seconds})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = HmsAsyncHook(GOVERNANCE)
        pause = self.poll_seconds
        while True:
            try:
                feed = await hook.get(DECISION_FEED, decidedSince=self.cursor, limit=1)
                pause = self.poll_seconds
                if feed.get("items"):
                    yield TriggerEvent({"reason": DECIDED})
                    return
            except ServiceError as err:  # governance down: wait longer; the feed keeps what it decided
                pause = min(max(pause, self.poll_seconds) * 2, LONGEST_RETRY_SECONDS)
                self.log.warning("Review feed unavailable (%s); asking again in %.0f s", err, pause)
            left = self.due_at - time.time()
            if left <= 0:
                yield TriggerEvent({"reason": DUE})
                return
            await asyncio.sleep(min(pause, left))


EVERY_SERVICE = "all"


class SuspensionBoard:
    """Governance's suspensions as this triggerer last read them: one request per poll interval,
    shared by every waiting step (they all run on this one event loop)."""

    _read_at: float = float("-inf")
    _items: list[dict[str, Any]] = []
    _lock: asyncio.Lock | None = None

    @classmethod
    async def covering(cls, service: str, *, max_age: float) -> dict[str, Any] | None:
        """The suspension that holds `service` back (its own, else `all`), or None."""
        if cls._lock is None:
            cls._lock = asyncio.Lock()
        async with cls._lock:
            if time.monotonic() - cls._read_at >= max_age:
                cls._items = (await HmsAsyncHook(GOVERNANCE).get(SUSPENSIONS_ENDPOINT)).get("items") or []
                cls._read_at = time.monotonic()
        found = {item.get("service"): item for item in cls._items if isinstance(item, dict)}
        return found.get(service) or found.get(EVERY_SERVICE)


class SuspensionLiftedTrigger(BaseTrigger):
    """Wait until no suspension covers `service`, or until `give_up_at` (epoch seconds)."""

    def __init__(self, *, service: str, give_up_at: float, poll_seconds: float) -> None:
        super().__init__()
        self.service = service
        self.give_up_at = give_up_at
        self.poll_seconds = poll_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"service": self.service, "give_up_at": self.give_up_at, "poll_seconds": self.poll_seconds})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        suspension: dict[str, Any] | None = None
        while True:
            try:
                suspension = await SuspensionBoard.covering(self.service, max_age=self.poll_seconds)
                if suspension is None:
                    yield TriggerEvent({"lifted": True})
                    return
            except ServiceError as err:  # governance down: the step keeps waiting (fail closed)
                self.log.warning("Suspensions unavailable (%s); still holding back %s", err, self.service)
            left = self.give_up_at - time.time()
            if left <= 0:
                yield TriggerEvent({"lifted": False, "suspension": suspension})
                return
            await asyncio.sleep(min(self.poll_seconds, left))
