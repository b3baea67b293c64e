"""Guard tests for the DAG files: they import, parse without touching a connection, a variable, the
network or the database, and every HTTP step has its budget, its retries and its timeout."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TAGS = {"hms", "proposals", "backlog", "review"}  # the controlled vocabulary analysts filter by


class TouchedAtParse(Exception):
    pass


def _refuse(what: str):
    def refuse(*args, **kwargs):
        raise TouchedAtParse(f"DAG parsing touched {what}")

    return refuse


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import BaseHook, Variable

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(BaseHook, "get_connection", classmethod(_refuse("a connection")))
        mp.setattr(Variable, "get", staticmethod(_refuse("a variable")))
        mp.setattr(socket.socket, "connect", _refuse("the network or the database"))
        return DagBag(dag_folder=str(ROOT / "dags"))


def test_every_dag_file_imports(dagbag):
    assert dagbag.import_errors == {}
    assert "proposal_orchestration" in dagbag.dags


def test_dags_carry_docs_and_known_tags(dagbag):
    for dag in dagbag.dags.values():
        assert dag.doc_md and len(dag.doc_md) > 200, dag.dag_id
        assert set(dag.tags) <= TAGS, (dag.dag_id, dag.tags)


def hms_steps(dagbag):
    from hms_management.orchestration.operators import HmsStepOperator

    return [t for dag in dagbag.dags.values() for t in dag.tasks if isinstance(t, HmsStepOperator)]


def test_every_hms_step_has_a_committed_pool_retries_and_a_timeout(dagbag):
    from hms_management.orchestration.config import settings

    pools = json.loads((ROOT / "config" / "pools.json").read_text())
    tasks = hms_steps(dagbag)
    assert {t.task_id for t in tasks} == {"apply_policy", "notify_officers", "record_audit"}
    for task in tasks:
        assert task.pool in pools, task.task_id
        assert task.retries >= 1, task.task_id
        assert task.retry_exponential_backoff, task.task_id
    assert 0 < settings().request_timeout_seconds <= 60  # every HMS call has a timeout (HmsHook)


def test_the_gate_has_its_pool_and_running_proposals_follow_the_setting(dagbag):
    from hms_management.orchestration.config import settings

    dag = dagbag.dags["proposal_orchestration"]
    assert dag.get_task("governance_gate").pool in json.loads((ROOT / "config" / "pools.json").read_text())
    assert dag.max_active_runs == settings().max_running_proposals


def test_audit_runs_on_every_outcome_and_a_failure_flag_decides_the_run_state(dagbag):
    dag = dagbag.dags["proposal_orchestration"]
    assert dag.get_task("record_audit").trigger_rule == "all_done"
    flag = dag.get_task("fail_run_if_a_step_failed")
    assert flag.trigger_rule == "one_failed"
    assert [t.task_id for t in dag.leaves] == ["fail_run_if_a_step_failed"]


def test_params_carry_the_proposal_schema(dagbag):
    params = dagbag.dags["proposal_orchestration"].params
    assert set(params.keys()) == {"id", "rule", "targets", "notify", "title", "submitted_by", "day", "priority",
                                  "impact", "metadata"}
    assert "$ref" not in json.dumps(params.get_param("targets").schema)  # each Param is checked on its own
    assert params.get_param("id").schema["pattern"] == "^[A-Za-z0-9][A-Za-z0-9_.-]*$"
