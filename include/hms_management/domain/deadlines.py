"""Which proposals need attention because of a deadline, as the analysts' desk marks them.

- A review is *due soon* once it is within `review_reminder_seconds` of its deadline (when the
  officers get their reminder), and *past its deadline* once the deadline has gone by and the
  review watcher has not yet timed it out (deciding is refused then).
- A queued or running proposal is *overdue* once it has waited `proposal_deadline_seconds` since it
  was queued (a resumed review is queued again, so time in review does not count); 0 turns it off.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from hms_management.domain.outcome import AWAITING_GOVERNANCE, QUEUED, RUNNING
from hms_management.domain.settings import Settings

DUE_SOON = "due soon"
PAST_DEADLINE = "past deadline"
OVERDUE = "overdue"


def deadline_mark(status: str, *, queued_at: datetime | None, review_deadline: datetime | None, now: datetime,
                  settings: Settings) -> str | None:
    """The mark a proposal carries at `now`, or None."""
    if status == AWAITING_GOVERNANCE and review_deadline is not None:
        if review_deadline <= now:
            return PAST_DEADLINE
        if review_deadline - now <= timedelta(seconds=settings.review_reminder_seconds):
            return DUE_SOON
    limit = settings.proposal_deadline_seconds
    if status in (QUEUED, RUNNING) and queued_at is not None and limit > 0 and now - queued_at >= timedelta(
            seconds=limit):
        return OVERDUE
    return None
