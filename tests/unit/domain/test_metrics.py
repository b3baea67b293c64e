"""What one proposal's record adds to the operators' tallies: each step's end, each end of the proposal
and each revocation once, retries as the tries after a failed one, and nothing for what is not an end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hms_management.domain.metrics import (
    ENDED,
    FAILURES,
    OUTCOME_ITEM,
    RETRIES,
    REVOCATIONS,
    STEP_BUCKET,
    STEP_COUNT,
    Increment,
    bucket_of,
    count,
)
from hms_management.domain.steps import APPLY_POLICY, FLAG_FAILURE, GOVERNANCE_GATE

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


def entry(state: str, tries: int = 1, seconds: float = 2.0) -> dict:
    return {"state": state, "tries": tries, "started_at": T0.isoformat(),
            "ended_at": (T0 + timedelta(seconds=seconds)).isoformat()}


def test_a_duration_falls_in_the_smallest_bucket_above_it():
    assert [bucket_of(s) for s in (0.05, 0.1, 0.11, 299, 301)] == ["0.1", "0.1", "0.25", "300.0", "+Inf"]


def test_a_step_that_ended_is_timed_once_with_its_retries():
    first = count(status="running", ended_at=None, steps={APPLY_POLICY: entry("success", tries=3)}, decision=None,
                  seen={})
    again = count(status="running", ended_at=None, steps={APPLY_POLICY: entry("success", tries=3)}, decision=None,
                  seen=first.marks)

    assert set(first.increments) == {Increment(RETRIES, APPLY_POLICY, by=2), Increment(STEP_COUNT, APPLY_POLICY),
                                     Increment("step_seconds_sum", APPLY_POLICY, by=2.0),
                                     Increment(STEP_BUCKET, APPLY_POLICY, "2.5")}
    assert again.increments == [] and again.marks == {}


def test_a_re_driven_step_counts_its_new_end_and_no_retry_for_its_first_new_try():
    before = count(status="failed", ended_at=T0, steps={APPLY_POLICY: entry("failed", tries=4)}, decision=None,
                   seen={}).marks
    after = count(status="completed", ended_at=T0 + timedelta(minutes=1), steps={APPLY_POLICY: entry("success", 5)},
                  decision=None, seen=before)

    assert Increment(FAILURES, APPLY_POLICY) not in after.increments
    assert not [i for i in after.increments if i.tally == RETRIES]
    assert Increment(ENDED, "completed") in after.increments and after.marks[OUTCOME_ITEM].startswith("completed@")


def test_what_is_not_an_end_adds_nothing():
    found = count(status="running", ended_at=None, decision={"status": "approved"}, seen={}, steps={
        GOVERNANCE_GATE: {"state": "skipped"}, APPLY_POLICY: entry("up_for_retry"), FLAG_FAILURE: entry("failed")})

    assert found.increments == [] and found.marks == {}


def test_a_revocation_counts_once():
    decision = {"status": "revoked", "revoked_by": "reviewer", "revoked_at": T0.isoformat()}
    first = count(status="running", ended_at=None, steps={}, decision=decision, seen={})

    assert first.increments == [Increment(REVOCATIONS)]
    assert count(status="running", ended_at=None, steps={}, decision=decision, seen=first.marks).increments == []
