"""The HMS services the workflow calls: one place for connection ids, pools, endpoints and payloads.

The DAG, the trigger, the set-up, the benchmarks and the tests import these names; none of them
spell an endpoint or a pool on their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from requests import Response


# The section of airflow.cfg that holds this project's settings.
CONFIG_SECTION = "hms_management"


@dataclass(frozen=True)
class Service:
    """An HMS service as the Management Layer sees it: its connection, its budget and its endpoint."""

    conn_id: str
    pool: str
    endpoint: str
    description: str


GOVERNANCE = Service("hms_governance", "hms_governance", "/gov/validate",
                     "HMS Governance Layer: approves, denies or asks for human review")
POLICY = Service("hms_policy", "hms_policy", "/svc/policy", "HMS policy service: puts rules live")
NOTIFICATIONS = Service("hms_notifications", "hms_notifications", "/notifications",
                        "HMS notifications: tells the officers")
AUDIT = Service("hms_audit", "hms_audit", "/audit/log", "HMS audit log: append-only record")
BACKLOG = Service("hms_backlog", "hms_backlog", "/backlog/proposals",
                  "HMS backlog: proposals queued for the next sweep")

SERVICES = (GOVERNANCE, POLICY, NOTIFICATIONS, AUDIT, BACKLOG)

DECISIONS_ENDPOINT = "/gov/decisions/{decision_id}"

# Retries for every HTTP step: exponential backoff, only for errors that may pass (see classify()).
RETRIES = 3
RETRY_DELAY = timedelta(seconds=1)
RETRY_BACKOFF = 2.0
MAX_RETRY_DELAY = timedelta(seconds=30)
REQUEST_TIMEOUT_SECONDS = 10.0


class TransientServiceError(Exception):
    """An answer worth retrying: the service is overloaded, down or rate-limiting us."""


class PermanentServiceError(Exception):
    """An answer no retry will change: the request itself is wrong (a 4xx other than 429)."""


def is_transient(status: int) -> bool:
    return status >= 500 or status == 429


def classify(response: Response) -> None:
    """Raise the error a non-2xx answer stands for; network errors are raised by requests itself."""
    if 200 <= response.status_code < 300:
        return
    detail = f"{response.request.method} {response.url} answered {response.status_code}: {response.text[:300]}"
    if is_transient(response.status_code):
        raise TransientServiceError(detail)
    raise PermanentServiceError(detail)


def idempotency_key(proposal_id: str, step: str) -> str:
    """The key under which a service applies a step's side effect at most once."""
    return f"{proposal_id}:{step}"


def auth_header(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# Payloads, one builder per step. Each takes the validated proposal (as stored in conf).

def policy_payload(proposal: dict[str, Any]) -> dict[str, Any]:
    return proposal


def notification_payload(proposal: dict[str, Any], policy: dict[str, Any] | None) -> dict[str, Any]:
    message = f"Policy #{proposal['id']} live"
    if proposal.get("title"):
        message += f": {proposal['title']}"
    return {
        "message": message,
        "proposalId": proposal["id"],
        "policy": policy or {},
        "priority": proposal.get("priority", "normal"),
    }
