"""A revocation is refused, before governance is asked, where it would stop nothing."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest

from hms_management.api import reviews
from hms_management.domain.settings import Settings
from hms_management.domain.steps import APPLY_POLICY, NOTIFY_OFFICERS


def running(steps: dict) -> SimpleNamespace:
    return SimpleNamespace(submitters={"agent"}, terminal=False, status="running", steps=steps,
                           decision={"decision_id": "d-1"})


@pytest.fixture
def asked(monkeypatch):
    """The calls governance got (none may be made for a refused revocation)."""
    calls = []
    monkeypatch.setattr(reviews, "HmsHook", lambda service: SimpleNamespace(call=lambda *a, **k: calls.append(a)))
    return calls


def use(monkeypatch, record, **settings) -> None:
    monkeypatch.setattr(reviews.proposals, "get", lambda proposal_id: record)
    monkeypatch.setattr(reviews, "settings", lambda: dataclasses.replace(Settings(), **settings))


def test_a_proposal_whose_officers_were_told_has_nothing_left_to_stop(monkeypatch, asked):
    use(monkeypatch, running({APPLY_POLICY: {"state": "success"}, NOTIFY_OFFICERS: {"state": "success"}}))

    with pytest.raises(reviews.ReviewRefused) as refused:
        reviews.revoke("p-1", reason="too late", reviewer="reviewer")

    assert refused.value.status == 409 and "nothing is left to stop" in str(refused.value)
    assert asked == []


def test_with_governance_checks_off_a_revocation_is_refused_as_stopping_nothing(monkeypatch, asked):
    use(monkeypatch, running({}), governance_checks=False)

    with pytest.raises(reviews.ReviewRefused) as refused:
        reviews.revoke("p-1", reason="stop it", reviewer="reviewer")

    assert refused.value.status == 409 and "governance_checks" in str(refused.value)
    assert asked == []
