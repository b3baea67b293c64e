"""
# Proposal orchestration

One run per proposal, named `proposal__<id>`: **governance gate → apply policy → notify officers →
record audit**. The proposal is the run's conf (see *Run config* / *Params*); the gate checks it
before it asks governance.

## Reading a run
- **The HMS Proposals view** (*Proposals* in the navigation, and the *Proposal* tab of a run) shows
  each proposal's status in its own colour, its reason, its failed step and its review deadline.
- **Run note** — `Outcome: ` and the outcome with its reason, written when the run ends:
  `COMPLETED`, `DENIED` (governance said no), `REVIEW TIMED OUT` (nobody decided in time),
  `REVOKED` (a reviewer revoked it), `FAILED at <step>`, or `IN REVIEW` (parked, see below). The
  note is for reading only: the status comes from what the steps recorded, and editing a note
  changes nothing.
- **Green run, policy steps skipped, `record_audit` done** — governance denied the proposal or its
  review timed out. That is a business outcome, not a fault: nothing to retry.
- **Green run, `governance_gate` done and every later step skipped, note `IN REVIEW`** — the
  proposal waits for a human reviewer, parked: it holds no worker, pool slot, trigger or scheduler
  turn. Reviewers decide in *Proposals → Awaiting review*; the DAG `review_watch` then resumes this
  same run from the gate (its try number goes up), or when the review deadline passes.
- **Red run** — a step failed after its retries, or governance answered something that is not a
  decision (refused: fail closed); `fail_run_if_a_step_failed` names the step and the audit record
  (`record_audit`) says the same to auditors.

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
- Runs waiting *queued*: at most `[hms_management] max_running_proposals` run at once; the rest
  start in submission order (`priority: high` first) as others finish.
"""

from __future__ import annotations

from airflow.sdk import Context, TriggerRule, chain, dag, task

from hms_management.domain.proposal import DAG_ID
from hms_management.domain.steps import APPLY_POLICY, FLAG_FAILURE, GOVERNANCE_GATE, NOTIFY_OFFICERS, RECORD_AUDIT
from hms_management.orchestration.config import settings
from hms_management.orchestration.operators import (
    ApplyPolicyOperator,
    GovernanceGateOperator,
    NotifyOfficersOperator,
    RecordAuditOperator,
)
from hms_management.orchestration.params import proposal_params


@dag(
    dag_id=DAG_ID,
    schedule=None,
    catchup=False,
    is_paused_upon_creation=False,
    # Proposals in review are finished runs (parked), so this bounds only proposals at work: a burst
    # flows through in submission order instead of every run advancing one step per turn together.
    max_active_runs=settings().max_running_proposals,
    params=proposal_params(),
    doc_md=__doc__,
    tags=["hms", "proposals"],
)
def proposal_orchestration():
    @task(task_id=FLAG_FAILURE, trigger_rule=TriggerRule.ONE_FAILED)
    def fail_run_if_a_step_failed(**context: Context) -> None:
        """Runs only when a step failed, and fails, so that the run's state tells the truth."""
        from hms_management.orchestration.progress import raise_failure

        raise_failure(context)

    steps = [
        GovernanceGateOperator(task_id=GOVERNANCE_GATE),
        ApplyPolicyOperator(task_id=APPLY_POLICY),
        NotifyOfficersOperator(task_id=NOTIFY_OFFICERS),
        RecordAuditOperator(task_id=RECORD_AUDIT),
    ]
    chain(*steps)
    steps >> fail_run_if_a_step_failed()


proposal_orchestration()
