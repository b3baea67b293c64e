"""Write each finished proposal run's outcome and reason into its run note, where analysts look.

Tasks cannot set their run's note, so this listener does it in the scheduler at the moment the run
finishes, from the outcome the audit step returned. A note an analyst wrote is kept below ours.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import TYPE_CHECKING

from airflow.listeners import hookimpl

from hms_management.domain.outcome import FAILED, Outcome
from hms_management.domain.proposal import DAG_ID
from hms_management.domain.steps import RECORD_AUDIT

if TYPE_CHECKING:
    from airflow.models.dagrun import DagRun

log = logging.getLogger(__name__)
MARK = "Outcome: "


def note_for(outcome: dict | None, run_state: str, previous: str | None) -> str:
    if outcome:
        line = MARK + Outcome(outcome["outcome"], outcome["reason"], outcome.get("failed_step")).headline
    else:  # the audit step itself did not finish: say so rather than guess
        line = MARK + f"{FAILED.upper()}: run {run_state} without an audit record (see record_audit's log)"
    kept = previous if previous and not previous.startswith(MARK) else None
    return f"{line}\n\n{kept}" if kept else line


def _write_note(dag_run: DagRun) -> None:
    if dag_run.dag_id != DAG_ID:
        return
    from airflow.models.xcom import XComModel
    from sqlalchemy import select
    from sqlalchemy.orm import object_session

    session = object_session(dag_run)
    if session is None:
        return
    value = session.scalar(
        select(XComModel.value).where(
            XComModel.dag_run_id == dag_run.id,
            XComModel.task_id == RECORD_AUDIT,
            XComModel.key == "return_value",
        )
    )
    outcome = XComModel.deserialize_value(SimpleNamespace(value=value))
    dag_run.note = note_for(outcome if isinstance(outcome, dict) else None, str(dag_run.state), dag_run.note)


@hookimpl
def on_dag_run_success(dag_run: DagRun, msg: str) -> None:
    _write_note(dag_run)


@hookimpl
def on_dag_run_failed(dag_run: DagRun, msg: str) -> None:
    _write_note(dag_run)
