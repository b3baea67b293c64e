"""Governance's answers read strictly: only the contract's `approved` approves; anything else is a
denial, a review, or refused with what was answered (fail closed). Deadlines belong to the decision."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hms_management.domain.governance import (
    APPROVED,
    GovernanceAnswerError,
    read_decision_record,
    read_validation,
    within_deadline,
)

STATUS_WORDS = st.one_of(st.none(), st.text(max_size=12), st.sampled_from(
    ["approved", "Approved", "APPROVED", " approved", "approved ", "denied", "review", "escalated", "cancelled", ""]))
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10), STATUS_WORDS)
bodies = st.one_of(
    st.dictionaries(st.sampled_from(["status", "decision_id", "reason", "error", "created_at"]), json_leaf),
    st.lists(json_leaf, max_size=3), json_leaf)


@given(status=st.sampled_from([200, 201, 202, 204, 400, 409]), body=bodies)
def test_no_answer_but_the_contracts_200_approved_with_a_decision_id_approves(status, body):
    approves = (status == 200 and isinstance(body, dict) and body.get("status") == APPROVED
                and isinstance(body.get("decision_id"), str) and body["decision_id"] != "")
    try:
        decision = read_validation(status, body, text=json.dumps(body))
    except GovernanceAnswerError as err:
        assert not approves
        assert str(status) in str(err)  # the refusal names what was answered
        return
    assert (decision.status == APPROVED) == approves
    assert decision.status in ("approved", "denied", "review")


@given(body=bodies)
def test_a_decision_record_with_anything_but_a_contract_status_is_refused(body):
    try:
        decision = read_decision_record(body, decision_id="d-1")
    except GovernanceAnswerError:
        return
    assert isinstance(body, dict) and body.get("status") in ("approved", "denied", "review")
    assert decision.status == body["status"]


CREATED = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def record(status: str, *, decided: datetime | None = None, created: str | None = CREATED.isoformat()):
    return read_decision_record({"status": status, "created_at": created, "reviewer": "rita",
                                 "decided_at": decided.isoformat() if decided else None}, decision_id="d-1")


def test_the_deadline_is_the_decisions_creation_plus_the_timeout_whenever_it_is_read():
    for now in (CREATED + timedelta(minutes=1), CREATED + timedelta(hours=70)):
        assert within_deadline(record("review"), now=now, timeout=timedelta(hours=72)).deadline == (
            CREATED + timedelta(hours=72)).isoformat()


def test_a_review_past_its_deadline_or_decided_after_it_times_out():
    timeout = timedelta(hours=1)
    assert within_deadline(record("review"), now=CREATED + timeout, timeout=timeout).status == "review_timeout"
    late = record("approved", decided=CREATED + timedelta(hours=2))
    assert within_deadline(late, now=CREATED + timedelta(hours=3), timeout=timeout).status == "review_timeout"
    in_time = record("approved", decided=CREATED + timedelta(minutes=30))
    assert within_deadline(in_time, now=CREATED + timedelta(hours=3), timeout=timeout).status == "approved"


@pytest.mark.parametrize("created", [None, "yesterday", "2026-12-01T09:00:00"])
def test_a_review_without_a_valid_creation_time_has_no_deadline_and_is_refused(created):
    with pytest.raises(GovernanceAnswerError, match="created_at"):
        within_deadline(record("review", created=created), now=CREATED, timeout=timedelta(hours=1))
