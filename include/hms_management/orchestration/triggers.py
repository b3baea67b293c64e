"""Triggers (the triggerer's event loop): the review watcher's wait, and release 0.1's review wait.

`ReviewFeedTrigger` is the one trigger behind every proposal in review: it asks the governance
service for decisions taken since a cursor, one request per poll whatever the number of proposals
waiting, and fires when there are some or when a review deadline (or reminder) falls due.

`GovernanceDecisionTrigger` is the per-proposal wait of release 0.1, kept only so that proposals
parked by it (their trigger's class path is stored in the metadata database) still resolve: it
polls its decision and fires once, read as strictly as every other answer of governance.

Both import everything at the top: an import inside run() would block the triggerer's loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from hms_management.domain.governance import REVIEW, REVIEW_TIMEOUT, read_decision_record
from hms_management.domain.services import (
    DECISION_FEED,
    DECISIONS_ENDPOINT,
    GOVERNANCE,
    ServiceError,
    TransientServiceError,
)
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


class GovernanceDecisionTrigger(BaseTrigger):
    """Release 0.1's wait for one proposal's review (see the module's docstring)."""

    def __init__(self, *, proposal: dict[str, Any], review_deadline: float, poll_interval: float,
                 http_conn_id: str = GOVERNANCE.conn_id, request_timeout: float = 10.0,
                 decision_id: str | None = None) -> None:
        super().__init__()
        self.proposal = proposal
        self.review_deadline = review_deadline
        self.poll_interval = poll_interval
        self.http_conn_id = http_conn_id
        self.request_timeout = request_timeout
        self.decision_id = decision_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        # The class path it was stored under, so a re-serialised trigger still resolves after a restart.
        return ("hms_management.governance.GovernanceDecisionTrigger", {
            "proposal": self.proposal, "review_deadline": self.review_deadline, "poll_interval": self.poll_interval,
            "http_conn_id": self.http_conn_id, "request_timeout": self.request_timeout,
            "decision_id": self.decision_id})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        yield TriggerEvent(await self.decision())

    async def decision(self) -> dict[str, Any]:
        hook = HmsAsyncHook(GOVERNANCE, timeout=self.request_timeout)
        endpoint = DECISIONS_ENDPOINT.format(decision_id=self.decision_id)
        while time.time() < self.review_deadline:
            await asyncio.sleep(min(self.poll_interval, max(0.0, self.review_deadline - time.time())))
            try:
                record = read_decision_record(await hook.get(endpoint), decision_id=str(self.decision_id))
            except TransientServiceError as err:
                self.log.warning("Governance unavailable (%s); asking again", err)
                continue
            except ServiceError as err:  # an answer that is not a decision: refused (fail closed)
                return {"status": "error", "reason": str(err), "transient": False}
            if record.status != REVIEW:
                return {"status": record.status, "reason": record.reason, "decision_id": self.decision_id,
                        "reviewer": record.reviewer}
        return {"status": REVIEW_TIMEOUT, "decision_id": self.decision_id,
                "reason": f"no reviewer decided on {self.decision_id} before the review deadline "
                          f"{datetime.fromtimestamp(self.review_deadline, UTC).isoformat()}"}
