"""The note a finished run carries in the UI: its outcome and why, the review it is parked on, and a
person's own note kept below ours."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from hms_management.domain.outcome import AWAITING_GOVERNANCE, COMPLETED, DENIED, FAILED, REVIEW_TIMEOUT, REVOKED
from hms_management.orchestration.run_listener import note_for
from hms_management.records.store import ProposalRecord

NOW = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
RECORD = ProposalRecord(
    id="p-1", run_id="proposal__p-1", seq=1, status=COMPLETED, reason="policy live", failed_step=None, title=None,
    named_submitter=None, triggered_by="agent", priority="normal", impact="normal", proposal={}, run_state="success",
    decision=None, outcome=None, steps={}, checks=[], submitted_at=NOW, queued_at=NOW, started_at=NOW, ended_at=NOW,
    updated_at=NOW)


@pytest.mark.parametrize(("status", "reason", "failed_step", "note"), [
    (COMPLETED, "policy live", None, "Outcome: COMPLETED: policy live"),
    (DENIED, "processing is not allowed on weekends (day: Sat)", None,
     "Outcome: DENIED: processing is not allowed on weekends (day: Sat)"),
    (REVIEW_TIMEOUT, "nobody decided within 72 h", None, "Outcome: REVIEW TIMED OUT: nobody decided within 72 h"),
    (REVOKED, "revoked by rita", None, "Outcome: REVOKED: revoked by rita"),
    (FAILED, "POST /svc/policy answered 503", "apply_policy",
     "Outcome: FAILED at apply_policy: POST /svc/policy answered 503"),
])
def test_a_finished_run_says_its_outcome_and_why(status, reason, failed_step, note):
    assert note_for(replace(RECORD, status=status, reason=reason, failed_step=failed_step), None) == note


def test_a_parked_run_names_its_decision_and_deadline():
    parked = replace(RECORD, status=AWAITING_GOVERNANCE, reason="high impact needs a reviewer",
                     decision={"decision_id": "d-9", "deadline": "2026-12-07T10:00:00+00:00"})
    assert note_for(parked, None) == ("IN REVIEW: decision d-9 awaits a reviewer until 2026-12-07T10:00:00+00:00: "
                                      "high impact needs a reviewer")


def test_a_persons_note_stays_below_ours_and_our_old_one_goes():
    ours = "Outcome: COMPLETED: policy live"
    assert note_for(RECORD, "checked with the FOIA office") == f"{ours}\n\nchecked with the FOIA office"
    assert note_for(RECORD, "IN REVIEW: decision d-9 awaits a reviewer") == ours
