"""The governance gate's trigger: ask the HMS Governance Layer, then wait for its decision.

The gate asks once from its worker (`ask`): most proposals are decided at once, and the answer in
hand saves the triggerer's round trip. A proposal sent to a human reviewer is deferred here, so it
waits in the triggerer and holds no worker slot and no pool slot. The trigger yields exactly one
event: approved, denied, review_timeout or error. Its imports sit at the top: an import inside
run() would block the triggerer's event loop for every trigger.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import aiohttp
from airflow.providers.http.hooks.http import HttpAsyncHook
from airflow.triggers.base import BaseTrigger, TriggerEvent

from hms_management.domain.outcome import DENIED, REVIEW_TIMEOUT
from hms_management.domain.services import DECISIONS_ENDPOINT, GOVERNANCE, idempotency_key, is_transient

APPROVED = "approved"
REVIEW = "review"
ERROR = "error"

# Within one deferral, a flaky governance service gets this many tries before the task's own
# retries take over; each try waits a little longer.
ATTEMPTS = 4
ATTEMPT_BACKOFF_SECONDS = 0.5
# A review takes minutes to days: the wait between polls grows from poll_interval by this factor up
# to the ceiling, so a thousand parked proposals ask ~17 times a second, not 200 (at 5 s each).
POLL_BACKOFF = 1.5
POLL_CEILING_SECONDS = 60.0


class GovernanceDecisionTrigger(BaseTrigger):
    """Ask governance about a proposal (once, idempotently) and wait while it is in review."""

    def __init__(
        self,
        *,
        proposal: dict[str, Any],
        review_deadline: float,
        poll_interval: float,
        http_conn_id: str = GOVERNANCE.conn_id,
        request_timeout: float = 10.0,
        decision_id: str | None = None,
    ) -> None:
        super().__init__()
        self.proposal = proposal
        self.review_deadline = review_deadline  # epoch seconds: survives a triggerer restart
        self.poll_interval = poll_interval
        self.http_conn_id = http_conn_id
        self.request_timeout = request_timeout
        self.decision_id = decision_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "proposal": self.proposal,
                "review_deadline": self.review_deadline,
                "poll_interval": self.poll_interval,
                "http_conn_id": self.http_conn_id,
                "request_timeout": self.request_timeout,
                "decision_id": self.decision_id,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        yield TriggerEvent(await _one_event(self._decide()))

    async def ask(self) -> dict[str, Any]:
        """Ask governance once (idempotently): a final decision, or `review` with its decision id."""
        return await _one_event(self._ask())

    async def _decide(self) -> dict[str, Any]:
        if self.decision_id is None:
            first = await self._ask()
            if first["status"] != REVIEW:
                return first
            self.decision_id = first["decision_id"]
        return await self._wait_for_reviewer()

    async def _ask(self) -> dict[str, Any]:
        post = HttpAsyncHook(method="POST", http_conn_id=self.http_conn_id, retry_limit=1)
        status, body = await self._call(post, GOVERNANCE.endpoint, {"proposal": self.proposal})
        if status == 400:
            return {"status": DENIED, "reason": body.get("error"), "decision_id": body.get("decision_id")}
        if status not in (200, 202):
            return _error(status, body)
        if body.get("status") == APPROVED:
            return {"status": APPROVED, "reason": body.get("reason"), "decision_id": body.get("decision_id")}
        self.log.info("Proposal %s is in human review as decision %s", self.proposal["id"], body["decision_id"])
        return {"status": REVIEW, "reason": body.get("reason"), "decision_id": body["decision_id"]}

    async def _wait_for_reviewer(self) -> dict[str, Any]:
        get = HttpAsyncHook(method="GET", http_conn_id=self.http_conn_id, retry_limit=1)
        endpoint = DECISIONS_ENDPOINT.format(decision_id=self.decision_id)
        pause = self.poll_interval
        while time.time() < self.review_deadline:
            # Wait first: the decision was "in review" a moment ago, when the gate asked.
            await asyncio.sleep(min(pause, max(0.0, self.review_deadline - time.time())))
            pause = min(pause * POLL_BACKOFF, max(self.poll_interval, POLL_CEILING_SECONDS))
            status, body = await self._call(get, endpoint, None)
            if status != 200:
                return _error(status, body)
            if body.get("status") != REVIEW:
                return {
                    "status": body["status"],
                    "reason": body.get("reason") or f"{body['status']} by {body.get('reviewer') or 'a reviewer'}",
                    "decision_id": self.decision_id,
                    "reviewer": body.get("reviewer"),
                }
        return {
            "status": REVIEW_TIMEOUT,
            "reason": f"no reviewer decided on {self.decision_id} before the review deadline",
            "decision_id": self.decision_id,
        }

    async def _call(self, hook: Any, endpoint: str, payload: dict[str, Any] | None) -> tuple[int, dict]:
        """One request, retried here on transient answers; returns the last status and JSON body."""
        headers = {"Idempotency-Key": idempotency_key(self.proposal["id"], "governance_gate")}
        options = {"check_response": False, "timeout": aiohttp.ClientTimeout(total=self.request_timeout)}
        status, body = 0, {}
        for attempt in range(1, ATTEMPTS + 1):
            try:
                async with hook.session() as session:
                    response = await session.run(endpoint=endpoint, json=payload, headers=headers,
                                                 extra_options=dict(options))
                    status, body = response.status, _json_body(await response.text())
            except (TimeoutError, aiohttp.ClientError) as err:
                status, body = 0, {"error": f"{type(err).__name__}: {err}"}
            if status and not is_transient(status):
                return status, body
            self.log.warning("Governance call %s failed (try %d of %d): %s %s",
                             endpoint, attempt, ATTEMPTS, status or "no answer", body)
            if attempt < ATTEMPTS:
                await asyncio.sleep(ATTEMPT_BACKOFF_SECONDS * 2 ** (attempt - 1))
        return status, body


async def _one_event(decision: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    """The decision, or an error event: one event, always; the task decides whether to retry."""
    try:
        return await decision
    except Exception as err:
        return {"status": ERROR, "reason": f"{type(err).__name__}: {err}", "transient": True}


def _json_body(text: str) -> dict[str, Any]:
    try:
        body = json.loads(text) if text else {}
    except ValueError:  # a proxy's HTML error page, say
        return {"error": text[:300]}
    return body if isinstance(body, dict) else {"body": body}


def _error(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": ERROR,
        "reason": f"governance answered {status or 'nothing'}: {body.get('error') or body}",
        "transient": status == 0 or is_transient(status),
    }
