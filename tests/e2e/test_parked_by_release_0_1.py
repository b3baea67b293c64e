"""A proposal parked in review by release 0.1 resumes after the upgrade.

Release 0.1 parked a proposal as a *running* run whose gate was deferred on a trigger of its own,
stored in the metadata database under the class path `hms_management.governance.GovernanceDecisionTrigger`.
This test puts a run of the live stack into exactly that state (through Airflow's own models, as 0.1
left it), decides the review on the governance service, and watches the triggerer resolve the old
class path, the gate read the event, and the proposal complete once, with its audit record.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from hms_management.domain.proposal import run_id_for
from hms_stack import secrets as stack_secrets
from tests.e2e.test_reviews import RULE, outcome_records, parked, policies

PARK_AS_RELEASE_0_1 = """
import json, sys, time
from airflow.models.dagrun import DagRun
from airflow.models.taskinstance import TaskInstance
from airflow.models.trigger import Trigger
from airflow.utils.session import create_session
from airflow.utils.state import DagRunState, TaskInstanceState
from hms_management.orchestration.triggers import GovernanceDecisionTrigger

run_id, decision_id, proposal = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
with create_session() as session:
    run = session.query(DagRun).filter_by(dag_id="proposal_orchestration", run_id=run_id).one()
    trigger = Trigger.from_object(GovernanceDecisionTrigger(
        proposal=proposal, review_deadline=time.time() + 600, poll_interval=0.5, decision_id=decision_id))
    session.add(trigger)
    session.flush()
    for ti in session.query(TaskInstance).filter_by(dag_id=run.dag_id, run_id=run_id):
        if ti.task_id == "governance_gate":
            ti.state, ti.trigger_id, ti.next_method = TaskInstanceState.DEFERRED, trigger.id, "execute_complete"
        else:
            ti.state = None
    run.state = DagRunState.RUNNING
    print(trigger.classpath)
"""


def test_a_run_parked_by_release_0_1_resumes_from_its_stored_trigger_and_completes_once(stack, management, hms,
                                                                                        agent, proposal_id):
    review = parked(management, proposal_id)["governance"]
    env = stack.airflow_env(f"postgresql+psycopg2://postgres@/airflow?host={stack.pgdata}",
                            stack_secrets.load_or_create(stack.state))
    proposal = {"id": proposal_id, "rule": RULE, "impact": "high"}
    stored = subprocess.run([sys.executable, "-c", PARK_AS_RELEASE_0_1, run_id_for(proposal_id), review["decision_id"],
                             json.dumps(proposal)], env=env, capture_output=True, text=True, check=True)
    assert stored.stdout.strip() == "hms_management.governance.GovernanceDecisionTrigger"
    assert agent.run(proposal_id).state == "running"
    wait_until(lambda: agent.task_instances(proposal_id)["governance_gate"]["state"] == "deferred")

    hms.post(f"/gov/decisions/{review['decision_id']}",
             json={"approved": True, "reviewer": "officer-7", "reason": "fine"}).raise_for_status()
    final = management.wait(proposal_id, timeout=120)

    assert final["status"] == "completed"
    assert len(policies(hms, proposal_id)) == 1
    [record] = outcome_records(hms, proposal_id)
    assert (record["outcome"], record["decisionId"]) == ("completed", review["decision_id"])


def wait_until(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.5)
