"""The analysts' desk as a reader sees it: durations in words, and who is offered the decide buttons."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hms_management.api.desk import Viewer, span
from hms_management.records.store import ProposalRecord

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("seconds", "said"), [
    (-3, "0 s"), (45, "45 s"), (60, "1 min"), (12 * 60 + 59, "12 min"), (3 * 3600, "3 h"),
    (3 * 3600 + 5 * 60, "3 h 5 min"), (2 * 86400, "2 d"), (2 * 86400 + 4 * 3600 + 59, "2 d 4 h")])
def test_durations_read_as_people_say_them(seconds, said):
    assert span(timedelta(seconds=seconds)) == said


def parked(*, submitted_by: str = "hms-a2a", triggered_by: str = "agent", deadline_in: float = 600,
           status: str = "awaiting_governance") -> ProposalRecord:
    return ProposalRecord(
        id="p-1", run_id="proposal__p-1", seq=1, status=status, reason="high impact", failed_step=None, title=None,
        named_submitter=submitted_by, triggered_by=triggered_by, priority="normal", impact="high",
        proposal={"id": "p-1", "submitted_by": submitted_by}, run_state="success", outcome=None, steps={}, checks=[],
        decision={"status": "review", "decision_id": "d-1",
                  "deadline": (NOW + timedelta(seconds=deadline_in)).isoformat()},
        submitted_at=NOW, queued_at=NOW, started_at=NOW, ended_at=NOW, updated_at=NOW)


REVIEWER = Viewer(name="reviewer", may_submit=True, may_review=True)


def test_a_reviewer_is_offered_the_decision_on_someone_elses_open_review():
    assert REVIEWER.may_decide(parked(), now=NOW)


def test_nobody_decides_their_own_proposal_whether_named_in_it_or_its_trigger():
    assert not REVIEWER.may_decide(parked(submitted_by="reviewer"), now=NOW)
    assert not REVIEWER.may_decide(parked(triggered_by="reviewer"), now=NOW)


def test_readers_agents_and_late_reviews_get_no_buttons():
    assert not Viewer(name="analyst", may_submit=False, may_review=False).may_decide(parked(), now=NOW)
    assert not Viewer(name="agent", may_submit=True, may_review=False).may_decide(parked(), now=NOW)
    assert not REVIEWER.may_decide(parked(deadline_in=-1), now=NOW)
    assert not REVIEWER.may_decide(parked(status="completed"), now=NOW)
