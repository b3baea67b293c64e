"""The run note an analyst reads (display only: nothing reads a status back from it)."""

from __future__ import annotations

from hms_management.orchestration.run_notes import note_for

REVIEW = {"status": "review", "decision_id": "d-7", "deadline": "2026-12-05T10:00:00+00:00",
          "reason": "high-impact proposal"}


def test_note_states_outcome_and_reason():
    note = note_for("failed", {"outcome": "failed", "reason": "503", "failed_step": "apply_policy"}, None, None)
    assert note == "Outcome: FAILED at apply_policy: 503"


def test_an_analysts_own_note_is_kept_below():
    note = note_for("success", {"outcome": "completed", "reason": "ok"}, None, "checked by Ana")
    assert note == "Outcome: COMPLETED: ok\n\nchecked by Ana"


def test_our_previous_note_is_replaced_not_stacked():
    parked = note_for("success", None, REVIEW, None)
    note = note_for("success", {"outcome": "completed", "reason": "ok"}, {"status": "approved"}, parked)
    assert note == "Outcome: COMPLETED: ok"


def test_a_parked_proposal_says_which_decision_it_waits_for_and_until_when():
    note = note_for("success", None, REVIEW, None)
    assert note == "IN REVIEW: decision d-7 awaits a reviewer until 2026-12-05T10:00:00+00:00: high-impact proposal"


def test_a_run_without_audit_outcome_says_so():
    assert "without an audit record" in note_for("failed", None, None, None)
