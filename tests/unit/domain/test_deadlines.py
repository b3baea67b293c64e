"""Which proposals the desk marks: reviews near or past their deadline, proposals in flight too long."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hms_management.domain.deadlines import DUE_SOON, OVERDUE, PAST_DEADLINE, deadline_mark
from hms_management.domain.settings import Settings

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
CONFIG = Settings(review_reminder_seconds=3600, proposal_deadline_seconds=1800)


def mark(status: str, *, queued_ago: float | None = None, deadline_in: float | None = None,
         config: Settings = CONFIG) -> str | None:
    return deadline_mark(
        status,
        queued_at=NOW - timedelta(seconds=queued_ago) if queued_ago is not None else None,
        review_deadline=NOW + timedelta(seconds=deadline_in) if deadline_in is not None else None,
        now=NOW, settings=config)


@pytest.mark.parametrize(("deadline_in", "expected"), [
    (7200, None), (3601, None), (3600, DUE_SOON), (60, DUE_SOON), (0, PAST_DEADLINE), (-5, PAST_DEADLINE)])
def test_a_review_is_due_soon_from_its_reminder_and_past_deadline_after_it(deadline_in, expected):
    assert mark("awaiting_governance", queued_ago=10 * 3600, deadline_in=deadline_in) == expected


@pytest.mark.parametrize("status", ["queued", "running"])
def test_a_proposal_in_flight_is_overdue_from_its_deadline(status):
    assert mark(status, queued_ago=1799) is None
    assert mark(status, queued_ago=1800) == OVERDUE


def test_finished_proposals_carry_no_mark_however_old():
    for status in ("completed", "denied", "review_timeout", "failed"):
        assert mark(status, queued_ago=30 * 86400, deadline_in=-86400) is None


def test_a_proposal_deadline_of_zero_switches_overdue_off():
    assert mark("running", queued_ago=86400, config=Settings(proposal_deadline_seconds=0)) is None
