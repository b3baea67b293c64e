"""The HMS services the workflow calls: one place for connection ids, pools, endpoints and payloads.

The DAG, the trigger, the set-up, the benchmarks and the tests import these names; none of them
spell an endpoint or a pool on their own.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import timedelta
from typing import Any


@dataclass(frozen=True)
class Service:
    """An HMS service as the Management Layer sees it: its name (as governance suspends it and a
    rate budget names it), its connection, its concurrency budget (pool) and its endpoint."""

    name: str
    conn_id: str
    pool: str
    endpoint: str
    description: str


GOVERNANCE = Service("governance", "hms_governance", "hms_governance", "/gov/validate",
                     "HMS Governance Layer: approves, denies or asks for human review")
POLICY = Service("policy", "hms_policy", "hms_policy", "/svc/policy", "HMS policy service: puts rules live")
NOTIFICATIONS = Service("notifications", "hms_notifications", "hms_notifications", "/notifications",
                        "HMS notifications: tells the officers")
AUDIT = Service("audit", "hms_audit", "hms_audit", "/audit/log", "HMS audit log: append-only record")
BACKLOG = Service("backlog", "hms_backlog", "hms_backlog", "/backlog/proposals",
                  "HMS backlog: proposals queued for the next sweep")

SERVICES = (GOVERNANCE, POLICY, NOTIFICATIONS, AUDIT, BACKLOG)

DECISIONS_ENDPOINT = "/gov/decisions/{decision_id}"
# Decisions listed: by proposal or status, and reviewers' decisions since a cursor (design.md §8).
DECISION_FEED = "/gov/decisions"
# Governance before every step (design.md §9): the check, a revocation, and the kill switch.
CHECK_ENDPOINT = "/gov/check"
REVOKE_ENDPOINT = "/gov/decisions/{decision_id}/revoke"
SUSPENSIONS_ENDPOINT = "/gov/suspensions"
# The live rule of one policy scope (design.md §11); 404 while the scope has none.
SCOPE_ENDPOINT = "/svc/policy/scopes/{scope}"

# Retries for every HTTP step: exponential backoff, only for errors that may pass (see classify()).
RETRIES = 3
RETRY_DELAY = timedelta(seconds=1)
RETRY_BACKOFF = 2.0
MAX_RETRY_DELAY = timedelta(seconds=30)


class ServiceError(Exception):
    """A call to an HMS service that did not give the answer the step needs; `status` is the HTTP
    status it answered (0: no answer at all)."""

    def __init__(self, message: str, *, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class TransientServiceError(ServiceError):
    """Worth retrying: the service is overloaded, down, rate-limiting us, or did not answer in time."""


class PermanentServiceError(ServiceError):
    """No retry will change it: the request itself is refused (a 4xx other than 429), or the answer
    is not one the contract knows."""


def is_transient(status: int) -> bool:
    return status >= 500 or status == 429


def answer_of(what: str, status: int, text: str, *, ok: Collection[int] = (200,)) -> dict[str, Any]:
    """The JSON object a service answered to `what` (e.g. `POST /svc/policy`) with one of the `ok`
    statuses; otherwise the error that answer stands for, quoting it."""
    shown = " ".join(text.split())[:300]
    if status not in ok:
        error = TransientServiceError if is_transient(status) else PermanentServiceError
        raise error(f"{what} answered {status}: {shown}", status=status)
    try:
        body = json.loads(text) if text else None
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise PermanentServiceError(f"{what} answered {status} with a body that is not a JSON object: {shown!r}",
                                    status=status)
    return body


def idempotency_key(proposal_id: str, step: str) -> str:
    """The key under which a service applies a step's side effect at most once."""
    return f"{proposal_id}:{step}"


def auth_header(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def policy_key(proposal_id: str, scope: str) -> str:
    """One scope's policy update is applied at most once (design.md §11): `<id>:policy:<scope>`."""
    return idempotency_key(proposal_id, f"policy:{scope}")


def notification_key(proposal_id: str, group: str) -> str:
    """One group is told at most once: `<id>:notify:<group>`."""
    return idempotency_key(proposal_id, f"notify:{group}")


# Payloads, one builder per call. Each takes the validated proposal (as stored in conf).

def policy_payload(proposal: dict[str, Any], scope: str, rule: Any) -> dict[str, Any]:
    """What the policy service gets for one scope: the proposal, with that scope's rule only."""
    about = {key: value for key, value in proposal.items() if key not in ("rule", "targets", "notify")}
    return {**about, "scope": scope, "rule": rule}


def notification_payload(proposal: dict[str, Any], group: str, policies: dict[str, Any]) -> dict[str, Any]:
    """What one officer group is told: the proposal is live, in which scopes, at which versions."""
    message = f"Policy #{proposal['id']} live"
    if proposal.get("title"):
        message += f": {proposal['title']}"
    return {
        "message": message,
        "proposalId": proposal["id"],
        "group": group,
        "policies": policies,
        "priority": proposal.get("priority", "normal"),
    }
