"""
# Proposal orchestration

One run per proposal, named `proposal__<id>`: **governance gate → apply policy → notify officers →
record audit**. The proposal is the run's conf (see *Run config* / *Params*); the gate checks it
before it asks governance.

## Reading a run
- **Run note** — the outcome and its reason, written when the run ends:
  `COMPLETED`, `DENIED` (governance said no), `REVIEW TIMED OUT` (nobody decided in time) or
  `FAILED at <step>`.
- **Green run, policy steps skipped** — governance denied the proposal or its review timed out.
  That is a business outcome, not a fault: nothing to retry.
- **Purple `governance_gate` in state *deferred*** — the proposal waits for a human reviewer. It
  holds no worker and no pool slot. Decide it with `POST /gov/decisions/<decision_id>` on the
  governance service (the decision id is in the gate's log).
- **Red run** — a step failed after its retries; `fail_run_if_a_step_failed` names it and the
  audit record (`record_audit`) says the same to auditors.

## Triage
- `apply_policy` / `notify_officers` / `record_audit` failed with `TransientServiceError`: the
  HMS service answered 5xx/429 or did not answer through every retry. Check the service, then
  *Clear* the failed task: every call carries an `Idempotency-Key`, so nothing is applied twice.
- Failed with `AirflowFailException` and a 4xx: the service refused the request; read the answer
  in the task log. Retrying will not help.
- `governance_gate` failed with "invalid proposal: <field>: <reason>": the conf is not a valid
  proposal (triggers through the API are refused with a 400 before a run exists, so this means a
  run was created some other way, e.g. `airflow dags trigger`). Nothing was sent to any service.
- Tasks stuck in *scheduled*: their pool (`hms_*`, Admin → Pools) is full — the service's
  concurrency budget.
"""

from __future__ import annotations

from airflow.sdk import Context, TriggerRule, chain, dag, task

from hms_management.domain.proposal import DAG_ID
from hms_management.domain.steps import APPLY_POLICY, FLAG_FAILURE, GOVERNANCE_GATE, NOTIFY_OFFICERS, RECORD_AUDIT
from hms_management.orchestration.operators import (
    ApplyPolicyOperator,
    GovernanceGateOperator,
    NotifyOfficersOperator,
    RecordAuditOperator,
)
from hms_management.orchestration.params import proposal_params

# Admission is bounded by the hms_* pools, not by run count: runs parked in human review must not
# keep a new proposal from starting.
MAX_ACTIVE_RUNS = 100_000


@dag(
    dag_id=DAG_ID,
    schedule=None,
    catchup=False,
    is_paused_upon_creation=False,
    max_active_runs=MAX_ACTIVE_RUNS,
    params=proposal_params(),
    doc_md=__doc__,
    tags=["hms", "proposals"],
)
def proposal_orchestration():
    @task(task_id=FLAG_FAILURE, trigger_rule=TriggerRule.ONE_FAILED)
    def fail_run_if_a_step_failed(**context: Context) -> None:
        """Runs only when a step failed, and fails, so that the run's state tells the truth."""
        from hms_management.orchestration.run_state import raise_failure

        raise_failure(context)

    steps = [
        GovernanceGateOperator(task_id=GOVERNANCE_GATE),
        ApplyPolicyOperator(task_id=APPLY_POLICY),
        NotifyOfficersOperator(task_id=NOTIFY_OFFICERS, policy_task_id=APPLY_POLICY),
        RecordAuditOperator(
            task_id=RECORD_AUDIT,
            gate_task_id=GOVERNANCE_GATE,
            policy_task_id=APPLY_POLICY,
            notify_task_id=NOTIFY_OFFICERS,
        ),
    ]
    chain(*steps)
    steps >> fail_run_if_a_step_failed()


proposal_orchestration()
