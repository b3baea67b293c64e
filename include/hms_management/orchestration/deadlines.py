"""Deadlines the officers hear about: a proposal not finished in time, a review about to time out.

A proposal's deadline (`[hms_management] proposal_deadline_seconds`) counts from when its run was
last queued, so time parked in review does not count (a resumed run is queued anew). A review's
reminder falls `review_reminder_seconds` before its deadline. The review watcher sends one officer
notification for each (kinds `deadline` and `review_reminder`, each under an Idempotency-Key of its
own, so a repeat changes nothing); the backlog sweep counts them in its summary.

Airflow's Deadline Alerts (experimental in 3.3) would fit the first, but apache/airflow#60927 fires
them after a failed run too, and their callback, in the triggerer, cannot look at the run first.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from hms_management.domain.deadlines import OVERDUE, deadline_mark
from hms_management.domain.governance import REVIEW
from hms_management.domain.services import DECISION_FEED, NOTIFICATIONS, idempotency_key
from hms_management.domain.settings import Settings
from hms_management.orchestration.hook import HmsHook

DEADLINE = "deadline"  # the kind of an officer notification about an overdue proposal
REVIEW_REMINDER = "review_reminder"
PAGE = 1000


def overdue(config: Settings, *, now: datetime) -> dict[str, datetime]:
    """Proposals queued or running for longer than their deadline, as the desk marks them: id → when
    their run was last queued (from their records)."""
    if config.proposal_deadline_seconds <= 0:
        return {}
    from hms_management.orchestration.records import records

    return {record.id: record.queued_at for record in records().unsettled(updated_before=now)
            if deadline_mark(record.status, queued_at=record.queued_at, review_deadline=None, now=now,
                             settings=config) == OVERDUE}


def notify_overdue(notifications: HmsHook, late: dict[str, datetime], config: Settings) -> None:
    for proposal_id, queued_at in late.items():
        notifications.post({
            "message": f"Proposal #{proposal_id} is not finished {config.proposal_deadline_seconds:.0f} s after it "
                       f"was queued ({queued_at.isoformat()})",
            "proposalId": proposal_id, "kind": DEADLINE, "queuedAt": queued_at.isoformat(),
        }, idempotency_key=idempotency_key(proposal_id, f"{DEADLINE}@{queued_at.isoformat()}"))


def open_reviews(governance: HmsHook, *, created_after: str | None, created_before: datetime) -> list[dict[str, Any]]:
    """Reviews still open at governance, created in (created_after, created_before], oldest first."""
    found: list[dict[str, Any]] = []
    after = created_after
    while True:
        page = governance.get(DECISION_FEED, status=REVIEW, createdAfter=after,
                              createdBefore=created_before.isoformat(), limit=PAGE)["items"]
        found += page
        if len(page) < PAGE:
            return found
        after = page[-1]["created_at"]


def reminder_cutoff(config: Settings, *, now: datetime) -> datetime:
    """Reviews created before this are within the reminder time of their deadline."""
    return now - max(config.review_timeout - timedelta(seconds=config.review_reminder_seconds), timedelta())


def remind(notifications: HmsHook, review: dict[str, Any], deadline: datetime) -> None:
    notifications.post({
        "message": f"Review of proposal #{review['proposal_id']} times out at {deadline.isoformat()}",
        "proposalId": review["proposal_id"], "kind": REVIEW_REMINDER, "decisionId": review["decision_id"],
        "deadline": deadline.isoformat(),
    }, idempotency_key=idempotency_key(review["proposal_id"], f"{REVIEW_REMINDER}@{review['decision_id']}"))


def notifications_hook() -> HmsHook:
    return HmsHook(NOTIFICATIONS)
