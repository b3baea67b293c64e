"""Proposals as runs in Airflow's metadata database: start one, read one, list them.

Used by the /management API inside the api-server, which owns the database connection (so this
module is imported there only). Each function opens one short session; async callers run them in
a thread.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from airflow.api.common.trigger_dag import trigger_dag
from airflow.exceptions import DagRunAlreadyExists
from airflow.models.dagrun import DagRun, DagRunNote
from airflow.models.taskinstance import TaskInstance
from airflow.models.xcom import XComModel
from airflow.utils.session import create_session
from airflow.utils.types import DagRunTriggeredByType
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from hms_management.domain.outcome import COMPLETED, DENIED, FAILED, HEADLINE_LABELS, OUTCOMES, REVIEW_TIMEOUT
from hms_management.domain.proposal import DAG_ID, RUN_ID_PREFIX, InvalidProposal, Proposal, parse_proposal, run_id_for
from hms_management.domain.steps import DECISION_KEY, GOVERNANCE_GATE, RECORD_AUDIT, TASK_ORDER
from hms_management.orchestration.run_notes import MARK

QUEUED, RUNNING, AWAITING_GOVERNANCE = "queued", "running", "awaiting_governance"
STATUSES = (QUEUED, RUNNING, AWAITING_GOVERNANCE, *OUTCOMES)


class ProposalConflict(Exception):
    """The id is taken by a proposal with other content."""


@dataclass
class Step:
    task_id: str
    state: str | None
    try_number: int
    start_date: datetime | None
    end_date: datetime | None


@dataclass
class ProposalRun:
    id: str
    run_id: str
    status: str
    run_state: str
    note: str | None
    queued_at: datetime | None
    start_date: datetime | None
    end_date: datetime | None
    conf: dict[str, Any]
    outcome: dict[str, Any] | None = None
    decision: dict[str, Any] | None = None
    steps: list[Step] = field(default_factory=list)

    @property
    def terminal(self) -> bool:
        return self.status in OUTCOMES

    @property
    def reason(self) -> str | None:
        if self.outcome:
            return self.outcome.get("reason")
        if self.note and self.note.startswith(MARK):  # "Outcome: FAILED at apply_policy: <reason>"
            return self.note.removeprefix(MARK).split(": ", 1)[-1].split("\n\n", 1)[0]
        return None


def status_of(run_state: str, note: str | None, gate_state: str | None) -> str:
    """A proposal's status from its run's state, its outcome note and its governance gate."""
    if run_state in ("success", "failed"):
        for outcome, label in HEADLINE_LABELS.items():
            if note and note.startswith(MARK + label):
                return outcome
        return FAILED if run_state == "failed" else COMPLETED
    if run_state == "queued":
        return QUEUED
    return AWAITING_GOVERNANCE if gate_state == "deferred" else RUNNING


def same_proposal(stored_conf: dict[str, Any] | None, proposal: Proposal) -> bool:
    try:
        return parse_proposal(stored_conf).as_conf() == proposal.as_conf()
    except InvalidProposal:
        return False


def start(proposal: Proposal, user_name: str) -> tuple[ProposalRun, bool]:
    """Start the proposal's run, or find it: (the run, whether it was started now)."""
    try:
        with create_session(scoped=False) as session:
            trigger_dag(DAG_ID, triggered_by=DagRunTriggeredByType.REST_API, run_id=proposal.run_id,
                        conf=proposal.as_conf(), triggering_user_name=user_name, session=session)
        started = True
    except (DagRunAlreadyExists, IntegrityError):  # IntegrityError: a concurrent twin won the race
        started = False
    run = get(proposal.id)
    if run is None:
        raise RuntimeError(f"run {proposal.run_id} neither started nor found")
    if not started and not same_proposal(run.conf, proposal):
        raise ProposalConflict(run.run_id)
    return run, started


def get(proposal_id: str) -> ProposalRun | None:
    with create_session(scoped=False) as session:
        run = session.scalar(select(DagRun).where(DagRun.dag_id == DAG_ID, DagRun.run_id == run_id_for(proposal_id)))
        if run is None:
            return None
        tis = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == DAG_ID, TaskInstance.run_id == run.run_id)
        ).all()
        steps = [Step(ti.task_id, ti.state, ti.try_number, ti.start_date, ti.end_date) for ti in tis]
        gate_state = next((s.state for s in steps if s.task_id == GOVERNANCE_GATE), None)
        view = _view(run, gate_state)
        view.steps = sorted(steps, key=lambda s: TASK_ORDER.index(s.task_id) if s.task_id in TASK_ORDER else 99)
        view.outcome = _xcom(session, run.id, RECORD_AUDIT, "return_value")
        view.decision = _xcom(session, run.id, GOVERNANCE_GATE, DECISION_KEY)
        return view


def list_page(status: str | None, limit: int, cursor: str | None) -> tuple[list[ProposalRun], str | None]:
    """Newest first; the cursor is opaque to callers (the last run's row id)."""
    query = select(DagRun).where(DagRun.dag_id == DAG_ID).order_by(DagRun.id.desc()).limit(limit + 1)
    if cursor is not None:
        query = query.where(DagRun.id < decode_cursor(cursor))
    if status in (COMPLETED, DENIED, REVIEW_TIMEOUT):
        query = query.join(DagRunNote, DagRunNote.dag_run_id == DagRun.id).where(
            DagRun.state == "success", DagRunNote.content.startswith(MARK + HEADLINE_LABELS[status]))
    elif status == FAILED:
        query = query.where(DagRun.state == "failed")
    elif status == QUEUED:
        query = query.where(DagRun.state == "queued")
    elif status in (RUNNING, AWAITING_GOVERNANCE):
        deferred = select(TaskInstance.run_id).where(
            TaskInstance.dag_id == DAG_ID, TaskInstance.task_id == GOVERNANCE_GATE, TaskInstance.state == "deferred")
        gated = DagRun.run_id.in_(deferred)
        query = query.where(DagRun.state == "running", gated if status == AWAITING_GOVERNANCE else ~gated)
    with create_session(scoped=False) as session:
        runs = session.scalars(query).all()
        page, more = runs[:limit], len(runs) > limit
        deferred_runs = set(session.scalars(
            select(TaskInstance.run_id).where(
                TaskInstance.dag_id == DAG_ID, TaskInstance.task_id == GOVERNANCE_GATE,
                TaskInstance.state == "deferred", TaskInstance.run_id.in_([r.run_id for r in page]))
        ).all()) if page else set()
        views = [_view(run, "deferred" if run.run_id in deferred_runs else None) for run in page]
    return views, encode_cursor(page[-1].id) if more else None


def encode_cursor(row_id: int) -> str:
    return base64.urlsafe_b64encode(f"run:{row_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """Raises ValueError for anything this API did not hand out."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise ValueError("not a cursor of this API") from None
    kind, _, number = text.partition(":")
    if kind != "run" or not number.isdigit() or len(number) > 18:
        raise ValueError("not a cursor of this API")
    return int(number)


def _view(run: Any, gate_state: str | None) -> ProposalRun:
    state = str(run.state)
    return ProposalRun(
        id=run.run_id.removeprefix(RUN_ID_PREFIX),
        run_id=run.run_id,
        status=status_of(state, run.note, gate_state),
        run_state=state,
        note=run.note,
        queued_at=run.queued_at,
        start_date=run.start_date,
        end_date=run.end_date,
        conf=run.conf or {},
    )


def _xcom(session: Any, dag_run_row_id: int, task_id: str, key: str) -> Any:
    value = session.scalar(select(XComModel.value).where(
        XComModel.dag_run_id == dag_run_row_id, XComModel.task_id == task_id, XComModel.key == key))
    return XComModel.deserialize_value(SimpleNamespace(value=value))
