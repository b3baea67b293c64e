"""Write each finished proposal run's outcome and reason into its run note, where analysts look.

Tasks cannot set their run's note, so this listener does it in the scheduler at the moment the run
finishes, from what the run recorded (the audit step's outcome, the gate's decision). The note is
for reading only: /management and the Proposals view derive a status from the same records, never
from a note. A note an analyst wrote is kept below ours.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from airflow.listeners import hookimpl

from hms_management.domain.outcome import FAILED, NO_AUDIT_RECORD, Outcome, is_parked
from hms_management.domain.proposal import DAG_ID

if TYPE_CHECKING:
    from airflow.models.dagrun import DagRun

log = logging.getLogger(__name__)
MARK = "Outcome: "
REVIEW_MARK = "IN REVIEW: "
OUR_MARKS = (MARK, REVIEW_MARK)


def note_for(run_state: str, outcome: dict[str, Any] | None, decision: dict[str, Any] | None,
             previous: str | None) -> str:
    if outcome:
        line = MARK + Outcome(outcome["outcome"], outcome["reason"], outcome.get("failed_step")).headline
    elif is_parked(run_state, decision):
        line = (f"{REVIEW_MARK}decision {decision.get('decision_id')} awaits a reviewer until "
                f"{decision.get('deadline')}: {decision.get('reason')}")
    else:  # the audit step itself did not finish: say so rather than guess
        line = MARK + f"{FAILED.upper()}: run {run_state}, {NO_AUDIT_RECORD}"
    kept = previous if previous and not previous.startswith(OUR_MARKS) else None
    return f"{line}\n\n{kept}" if kept else line


def _write_note(dag_run: DagRun) -> None:
    if dag_run.dag_id != DAG_ID:
        return
    from sqlalchemy.orm import object_session

    from hms_management.orchestration.run_records import outcome_and_decision

    session = object_session(dag_run)
    if session is None:
        return
    outcome, decision = outcome_and_decision(session, dag_run.id)
    dag_run.note = note_for(str(dag_run.state), outcome, decision, dag_run.note)


@hookimpl
def on_dag_run_success(dag_run: DagRun, msg: str) -> None:
    _write_note(dag_run)


@hookimpl
def on_dag_run_failed(dag_run: DagRun, msg: str) -> None:
    _write_note(dag_run)
