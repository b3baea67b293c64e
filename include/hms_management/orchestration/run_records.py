"""What a proposal run recorded, read from the metadata database by the processes that own it (the
scheduler's run-note listener, the api-server's /management): one reader of a step's XCom, and
the SQL that reads the same two records for many runs at once (lists, counts, their indexes)."""

from __future__ import annotations

from typing import Any

from airflow.models.xcom import XComModel
from sqlalchemy import String, case, cast, func, literal, select, type_coerce
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from hms_management.domain.steps import DECISION_KEY, GOVERNANCE_GATE, RECORD_AUDIT

RETURN_VALUE = "return_value"


def step_xcom(session: Session, dag_run_row_id: int, task_id: str, key: str = RETURN_VALUE) -> Any:
    """A step's XCom `key` in a run (by the run's row id), deserialised; None when it left none."""
    row = session.scalar(select(XComModel).where(
        XComModel.dag_run_id == dag_run_row_id, XComModel.task_id == task_id, XComModel.key == key))
    return XComModel.deserialize_value(row) if row is not None else None


def outcome_and_decision(session: Session, dag_run_row_id: int) -> tuple[dict | None, dict | None]:
    """The outcome the audit step returned and the decision the gate kept (each a dict, or None)."""
    outcome = step_xcom(session, dag_run_row_id, RECORD_AUDIT)
    decision = step_xcom(session, dag_run_row_id, GOVERNANCE_GATE, DECISION_KEY)
    return (outcome if isinstance(outcome, dict) else None, decision if isinstance(decision, dict) else None)


# -- the same records in SQL ------------------------------------------------------------------------
# Each expression is also the key of an index (metadata_indexes): PostgreSQL uses an expression
# index only for the very same expression, so queries and indexes both build it here.

def as_object(value: Any) -> Any:
    """An XCom's value as a JSON object in SQL: values stored as JSON text are unwrapped."""
    unwrapped = case((func.jsonb_typeof(value) == "string", cast(value.op("#>>")(literal("{}")), JSONB)),
                     else_=value)
    return type_coerce(unwrapped, JSONB)


def recorded_outcome(audit_value: Any) -> Any:
    """The outcome the audit step recorded (`record_audit`'s return value), as text."""
    return type_coerce(as_object(audit_value)["outcome"].astext, String)


def decision_status(gate_value: Any) -> Any:
    """The status of the decision the gate kept (`governance_gate`'s `decision`), as text."""
    return type_coerce(as_object(gate_value)["status"].astext, String)
