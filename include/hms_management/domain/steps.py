"""The workflow's steps as Airflow names them: task ids, in workflow order, and the XCom keys they leave.

One place for these names: the DAG, the operators, the listener, the /management API, the sweep and
the tests import them, none spells them on its own.
"""

from __future__ import annotations

# Task ids, in workflow order. A step "completed" when it left a return value. The gate checks the
# proposal itself before it asks governance: a step of its own would cost every proposal another
# task process (~0.3 s, and a fifth of a proposal's CPU; README "Performance").
GOVERNANCE_GATE = "governance_gate"
APPLY_POLICY = "apply_policy"
NOTIFY_OFFICERS = "notify_officers"
RECORD_AUDIT = "record_audit"
FLAG_FAILURE = "fail_run_if_a_step_failed"
STEPS = (GOVERNANCE_GATE, APPLY_POLICY, NOTIFY_OFFICERS)
TASK_ORDER = (*STEPS, RECORD_AUDIT, FLAG_FAILURE)

# XCom keys besides return_value.
DECISION_KEY = "decision"  # the governance decision, whatever it was
ERROR_KEY = "error"  # why a step's last try failed: {"error": str, "transient": bool}
