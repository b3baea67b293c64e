"""The scheduler's listener for proposal runs: their records follow Airflow's run state, and a
finished run's note says its outcome.

Only the scheduler sees a run start and end. As it does, the listener writes the run's state into
the proposal's record (whose status the record settles, `records.store`), and at the end writes the
record's status and reason into the run note, where analysts look first. The note is for reading
only: nothing reads a status back from it, and an analyst's own note is kept below ours.

A write that fails here (the records' database down or slow) is logged, never raised into the
scheduler's loop: the records keeper (`api.keeper`) repairs the record from Airflow's own.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.listeners import hookimpl

from hms_management.domain.outcome import AWAITING_GOVERNANCE, FAILED, HEADLINE_LABELS, RUNNING
from hms_management.domain.proposal import DAG_ID, proposal_id_of
from hms_management.domain.steps import FLAG_FAILURE
from hms_management.records.store import Admission, ProposalRecord

if TYPE_CHECKING:
    from airflow.models.dagrun import DagRun

log = logging.getLogger(__name__)
MARK = "Outcome: "
REVIEW_MARK = "IN REVIEW: "
OUR_MARKS = (MARK, REVIEW_MARK)


def note_for(record: ProposalRecord, previous: str | None) -> str:
    """The note of a finished run: its outcome and why, or the review it is parked on."""
    if record.status == AWAITING_GOVERNANCE:
        decision = record.decision or {}
        line = (f"{REVIEW_MARK}decision {decision.get('decision_id')} awaits a reviewer until "
                f"{decision.get('deadline')}: {record.reason}")
    else:
        label = HEADLINE_LABELS.get(record.status, HEADLINE_LABELS[FAILED])
        line = f"{MARK}{label}{f' at {record.failed_step}' if record.failed_step else ''}: {record.reason}"
    kept = previous if previous and not previous.startswith(OUR_MARKS) else None
    return f"{line}\n\n{kept}" if kept else line


def run_facts(dag_run: Any) -> dict[str, Any]:
    """What Airflow's run says that the record keeps: its state and times; at its end, the failure
    flag's too (it runs only when a step failed, so a green run skipped it)."""
    state = str(getattr(dag_run.state, "value", dag_run.state))
    if state == RUNNING:
        return {"run_state": state, "started_at": dag_run.start_date, "queued_at": dag_run.queued_at or _now()}
    if state in ("success", "failed"):
        flag = {"state": "skipped"} if state == "success" else {"state": "failed", "tries": 1}
        return {"run_state": state, "ended_at": dag_run.end_date or _now(), "steps": {FLAG_FAILURE: flag}}
    return {"run_state": state}


def admission_of(dag_run: Any) -> Admission:
    """The record of a run that has none yet (made around the admission check, or its admission's
    write was lost): from the run's conf, as submitted."""
    return Admission.of(dag_run.conf, run_id=dag_run.run_id, triggered_by=dag_run.triggering_user_name,
                        submitted_at=dag_run.created_at or dag_run.run_after or _now())


def follow(dag_run: DagRun) -> ProposalRecord | None:
    """Write the run's state into its proposal's record; the record, or None if it could not be written."""
    from hms_management.orchestration.records import records

    try:
        return records(pooled=True).change(proposal_id_of(dag_run.run_id), admission=admission_of(dag_run),
                                           **run_facts(dag_run))
    except Exception as err:  # whatever it is, never the scheduler's problem: the keeper repairs the record
        log.warning("could not write the record of %s (%s: %s); the records keeper repairs it", dag_run.run_id,
                    type(err).__name__, err)
        return None


def _ended(dag_run: DagRun) -> None:
    if dag_run.dag_id != DAG_ID:
        return
    record = follow(dag_run)
    if record is not None:
        dag_run.note = note_for(record, dag_run.note)


def _now() -> datetime:
    return datetime.now(UTC)


@hookimpl
def on_dag_run_running(dag_run: DagRun) -> None:
    if dag_run.dag_id == DAG_ID:
        follow(dag_run)


@hookimpl
def on_dag_run_success(dag_run: DagRun) -> None:
    _ended(dag_run)


@hookimpl
def on_dag_run_failed(dag_run: DagRun) -> None:
    _ended(dag_run)
