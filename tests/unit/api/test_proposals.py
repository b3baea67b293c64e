"""How the /management API reads a proposal's status from its run."""

from __future__ import annotations

import pytest

from hms_management.api.proposals import decode_cursor, encode_cursor, status_of


@pytest.mark.parametrize(
    ("run_state", "note", "gate_state", "status"),
    [
        ("queued", None, None, "queued"),
        ("running", None, "success", "running"),
        ("running", None, "deferred", "awaiting_governance"),
        ("success", "Outcome: COMPLETED: policy applied", "success", "completed"),
        ("success", "Outcome: DENIED: weekend", "skipped", "denied"),
        ("success", "Outcome: REVIEW TIMED OUT: nobody", "skipped", "review_timeout"),
        ("failed", "Outcome: FAILED at apply_policy: 503", "success", "failed"),
        ("failed", None, None, "failed"),
    ],
)
def test_status_of(run_state, note, gate_state, status):
    assert status_of(run_state, note, gate_state) == status


def test_cursor_round_trips_and_refuses_forgeries():
    assert decode_cursor(encode_cursor(1234)) == 1234
    for forged in ["", "../../etc", "cnVuOi0x", "bm9wZTox", "%%%"]:
        with pytest.raises(ValueError):
            decode_cursor(forged)
