"""The workflow's steps as Airflow names them: task ids, in workflow order.

One place for these names: the DAG, the operators, the listener, the /management API, the sweep and
the tests import them, none spells them on its own.
"""

from __future__ import annotations

# Task ids, in workflow order. A step "completed" when the proposal's record says it succeeded. The
# gate checks the proposal itself before it asks governance: a step of its own would cost every
# proposal another task process (docs/performance.md, "What was tuned").
GOVERNANCE_GATE = "governance_gate"
APPLY_POLICY = "apply_policy"
NOTIFY_OFFICERS = "notify_officers"
RECORD_AUDIT = "record_audit"
FLAG_FAILURE = "fail_run_if_a_step_failed"
STEPS = (GOVERNANCE_GATE, APPLY_POLICY, NOTIFY_OFFICERS)
TASK_ORDER = (*STEPS, RECORD_AUDIT, FLAG_FAILURE)
