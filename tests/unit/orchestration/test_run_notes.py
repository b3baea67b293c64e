"""The run note an analyst reads."""

from __future__ import annotations

from hms_management.orchestration.run_notes import note_for


def test_note_states_outcome_and_reason():
    note = note_for({"outcome": "failed", "reason": "503", "failed_step": "apply_policy"}, "failed", None)
    assert note == "Outcome: FAILED at apply_policy: 503"


def test_an_analysts_own_note_is_kept_below():
    note = note_for({"outcome": "completed", "reason": "ok"}, "success", "checked by Ana")
    assert note == "Outcome: COMPLETED: ok\n\nchecked by Ana"


def test_our_previous_note_is_replaced_not_stacked():
    note = note_for({"outcome": "completed", "reason": "ok"}, "success", "Outcome: FAILED at apply_policy: 503")
    assert note == "Outcome: COMPLETED: ok"


def test_a_run_without_audit_outcome_says_so():
    assert "without an audit record" in note_for(None, "failed", None)
