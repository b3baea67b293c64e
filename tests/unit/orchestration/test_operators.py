"""The governance gate refuses a run whose conf is not a valid proposal, before asking anyone.

Triggers through the REST API never get here (the admission check answers 400); a run created
another way (`airflow dags trigger`, the database) does, and must fail with the reason, kept for
the audit record as a failure no re-drive will change.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException

from hms_management.domain.steps import ERROR_KEY
from hms_management.orchestration import operators
from hms_management.orchestration.operators import GovernanceGateOperator, validated_proposal


class FakeTaskInstance:
    def __init__(self) -> None:
        self.pushed: dict[str, object] = {}

    def xcom_push(self, key: str, value: object) -> None:
        self.pushed[key] = value


def context_for(conf: dict, run_id: str) -> dict:
    return {"dag_run": SimpleNamespace(conf=conf, run_id=run_id), "ti": FakeTaskInstance()}


def test_invalid_conf_fails_the_gate_with_the_field_and_asks_nobody(monkeypatch):
    monkeypatch.setattr(operators.GovernanceDecisionTrigger, "ask", lambda self: pytest.fail("governance was asked"))
    context = context_for({"id": "bad id!", "rule": "r"}, "proposal__bad id!")

    with pytest.raises(AirflowFailException, match="invalid proposal: id"):
        GovernanceGateOperator(task_id="governance_gate").execute(context)

    error = context["ti"].pushed[ERROR_KEY]
    assert error["error"].startswith("invalid proposal: id") and error["transient"] is False


def test_a_run_id_that_is_not_the_proposals_fails_the_gate():
    context = context_for({"id": "p-1", "rule": "r"}, "manual__2026-11-27")

    with pytest.raises(AirflowFailException, match="one run per proposal"):
        GovernanceGateOperator(task_id="governance_gate").execute(context)


def test_later_steps_read_the_proposal_with_its_defaults_from_the_conf():
    assert validated_proposal(context_for({"id": "p-1", "rule": "r"}, "proposal__p-1"))["priority"] == "normal"
    assert validated_proposal(context_for({"rule": "r"}, "proposal__x")) is None  # the gate has failed the run
