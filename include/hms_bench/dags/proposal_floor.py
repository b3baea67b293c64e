"""
# Proposal floor (benchmark only)

`proposal_orchestration`'s shape, with tasks that do nothing: the same five tasks, dependencies and
trigger rules, in the same deployment. What a proposal takes beyond this DAG's latency is the price
of the work itself (HTTP calls, XComs, the governance ask); the rest is Airflow's.
"""

from __future__ import annotations

from airflow.sdk import TriggerRule, chain, dag, task

from hms_management.domain.steps import APPLY_POLICY, FLAG_FAILURE, GOVERNANCE_GATE, NOTIFY_OFFICERS, RECORD_AUDIT

FLOOR_DAG_ID = "proposal_floor"


@dag(dag_id=FLOOR_DAG_ID, schedule=None, catchup=False, is_paused_upon_creation=False,
     max_active_runs=100_000, doc_md=__doc__, tags=["benchmark"])
def proposal_floor():
    @task
    def nothing() -> None:
        """The step's place in the graph, without its work."""

    steps = [nothing.override(task_id=step)() for step in (GOVERNANCE_GATE, APPLY_POLICY, NOTIFY_OFFICERS)]
    steps.append(nothing.override(task_id=RECORD_AUDIT, trigger_rule=TriggerRule.ALL_DONE)())
    chain(*steps)
    steps >> nothing.override(task_id=FLAG_FAILURE, trigger_rule=TriggerRule.ONE_FAILED)()


proposal_floor()
