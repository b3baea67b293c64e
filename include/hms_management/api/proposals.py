"""Proposals as the api-server reads them from Airflow's metadata database: start one, read one,
list and count them, the reviews awaiting a decision.

A proposal's status comes from what its workflow recorded — the run's state, the outcome the audit
step returned, the decision the gate kept (`domain.outcome.proposal_status`) — never from its run
note. Lists compute the same status in SQL, so filters and counts agree with a single proposal's
view. Each function opens one short session; async callers run them in a thread.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.api.common.trigger_dag import trigger_dag
from airflow.exceptions import DagRunAlreadyExists
from airflow.models.dagrun import DagRun
from airflow.models.taskinstance import TaskInstance
from airflow.models.xcom import XComModel
from airflow.utils.session import create_session
from airflow.utils.types import DagRunTriggeredByType
from sqlalchemy import String, and_, case, cast, func, literal, or_, select, type_coerce
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from hms_management.domain.outcome import (
    AWAITING_GOVERNANCE,
    FAILED,
    NO_AUDIT_RECORD,
    OUTCOMES,
    QUEUED,
    RUNNING,
    STATUSES,
    proposal_status,
)
from hms_management.domain.priority import run_after_for
from hms_management.domain.proposal import DAG_ID, Proposal, proposal_id_of, run_id_for, same_proposal
from hms_management.domain.steps import DECISION_KEY, GOVERNANCE_GATE, RECORD_AUDIT, TASK_ORDER
from hms_management.orchestration.run_records import RETURN_VALUE, outcome_and_decision


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
class ProposalView:
    """A proposal as /management and the Proposals view show it."""

    id: str
    run_id: str
    status: str
    run_state: str
    note: str | None
    queued_at: datetime | None
    start_date: datetime | None
    end_date: datetime | None
    conf: dict[str, Any]
    triggered_by: str | None
    outcome: dict[str, Any] | None = None
    decision: dict[str, Any] | None = None
    steps: list[Step] = field(default_factory=list)
    # When it was submitted: the run's creation (queued_at moves when a review resumes the run).
    created_at: datetime | None = None

    @property
    def terminal(self) -> bool:
        return self.status in OUTCOMES

    @property
    def reason(self) -> str | None:
        if self.outcome:
            return self.outcome.get("reason")
        if self.status == AWAITING_GOVERNANCE and self.decision:
            return self.decision.get("reason")
        if self.status == FAILED:
            return NO_AUDIT_RECORD
        return None

    @property
    def failed_step(self) -> str | None:
        return (self.outcome or {}).get("failed_step")

    @property
    def submitted_by(self) -> str | None:
        """Whom the proposal names, else the user that submitted it."""
        return self.conf.get("submitted_by") or self.triggered_by

    @property
    def submitters(self) -> set[str]:
        """Who raised it: the user that triggered the run, and whom the proposal names."""
        return {name for name in (self.triggered_by, self.conf.get("submitted_by")) if name}


def start(proposal: Proposal, user_name: str, *, now: datetime | None = None) -> tuple[ProposalView, bool]:
    """Start the proposal's run, or find it: (the run, whether it was started now)."""
    now = now or datetime.now(UTC)
    try:
        with create_session(scoped=False) as session:
            trigger_dag(DAG_ID, triggered_by=DagRunTriggeredByType.REST_API, run_id=proposal.run_id,
                        conf=proposal.as_conf(), triggering_user_name=user_name,
                        run_after=run_after_for(proposal.priority, now), session=session)
        started = True
    except (DagRunAlreadyExists, IntegrityError):  # IntegrityError: a concurrent twin won the race
        started = False
    view = get(proposal.id)
    if view is None:
        raise RuntimeError(f"run {proposal.run_id} neither started nor found")
    if not started and not same_proposal(view.conf, proposal):
        raise ProposalConflict(view.run_id)
    return view, started


def get(proposal_id: str) -> ProposalView | None:
    with create_session(scoped=False) as session:
        run = session.scalar(select(DagRun).where(DagRun.dag_id == DAG_ID, DagRun.run_id == run_id_for(proposal_id)))
        if run is None:
            return None
        outcome, decision = outcome_and_decision(session, run.id)
        view = _view(run, outcome, decision)
        tis = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == DAG_ID, TaskInstance.run_id == run.run_id)).all()
        steps = [Step(ti.task_id, ti.state, ti.try_number, ti.start_date, ti.end_date) for ti in tis]
        view.steps = sorted(steps, key=lambda s: TASK_ORDER.index(s.task_id) if s.task_id in TASK_ORDER else 99)
        return view


@dataclass(frozen=True)
class Filters:
    status: str | None = None
    submitter: str | None = None  # the proposal's submitted_by, or the user that triggered it
    text: str | None = None  # in the id or the title, any case

    def where(self, columns: _Columns) -> list[Any]:
        clauses = [DagRun.dag_id == DAG_ID]
        if self.status is not None:
            clauses.append(columns.status == self.status)
        if self.submitter:
            # DagRun.conf is SQLAlchemy's generic JSON (jsonb on PostgreSQL): as_string() is its ->>.
            clauses.append(or_(DagRun.conf["submitted_by"].as_string() == self.submitter,
                               DagRun.triggering_user_name == self.submitter))
        if self.text:
            pattern = "%" + self.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            clauses.append(or_(DagRun.run_id.ilike(pattern, escape="\\"),
                               DagRun.conf["title"].as_string().ilike(pattern, escape="\\")))
        return clauses


def list_page(filters: Filters, limit: int, cursor: str | None, *,
              oldest_first: bool = False) -> tuple[list[ProposalView], str | None]:
    """Newest first (or oldest first: reviews nearest their deadline); the cursor is opaque to callers
    (the last run's row id)."""
    columns = _Columns()
    order = DagRun.id.asc() if oldest_first else DagRun.id.desc()
    query = (columns.select(DagRun, columns.outcome, columns.decision)
             .where(*filters.where(columns)).order_by(order).limit(limit + 1))
    if cursor is not None:
        after = decode_cursor(cursor)
        query = query.where(DagRun.id > after if oldest_first else DagRun.id < after)
    with create_session(scoped=False) as session:
        rows = session.execute(query).all()
        page, more = rows[:limit], len(rows) > limit
        views = [_view(run, _json(outcome), _json(decision)) for run, outcome, decision in page]
    return views, encode_cursor(page[-1][0].id) if more else None


def counts(filters: Filters) -> dict[str, int]:
    """How many proposals are in each status (every status present, zero included)."""
    columns = _Columns()
    query = (columns.select(columns.status, func.count())
             .where(*Filters(submitter=filters.submitter, text=filters.text).where(columns)).group_by(columns.status))
    with create_session(scoped=False) as session:
        found = dict(session.execute(query).all())
    return {status: found.get(status, 0) for status in STATUSES}


class _Columns:
    """The two records a status comes from, joined to their run, and the status computed from them
    in SQL exactly as `proposal_status` computes it in Python."""

    def __init__(self) -> None:
        self.audit = aliased(XComModel)
        self.gate = aliased(XComModel)
        self.outcome = _jsonb(self.audit.value)
        self.decision = _jsonb(self.gate.value)
        state = cast(DagRun.state, String)
        recorded = self.outcome["outcome"].astext
        self.status = case(
            (state.in_((QUEUED, RUNNING)), state),
            (and_(state == "success", self.audit.value.is_(None), self.decision["status"].astext == "review"),
             literal(AWAITING_GOVERNANCE)),
            (and_(state == "success", recorded.in_(OUTCOMES)), recorded),
            else_=literal(FAILED),
        )

    def select(self, *what: Any) -> Any:
        return (select(*what).select_from(DagRun)
                .outerjoin(self.audit, and_(self.audit.dag_run_id == DagRun.id, self.audit.task_id == RECORD_AUDIT,
                                            self.audit.key == RETURN_VALUE))
                .outerjoin(self.gate, and_(self.gate.dag_run_id == DagRun.id, self.gate.task_id == GOVERNANCE_GATE,
                                           self.gate.key == DECISION_KEY)))


def _jsonb(value: Any) -> Any:
    """An XCom's value as a JSON object in SQL: values stored as JSON text are unwrapped."""
    unwrapped = case((func.jsonb_typeof(value) == "string", cast(value.op("#>>")(literal("{}")), JSONB)),
                     else_=value)
    return type_coerce(unwrapped, JSONB)


def _json(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


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


def _view(run: Any, outcome: dict[str, Any] | None, decision: dict[str, Any] | None) -> ProposalView:
    state = str(run.state)
    return ProposalView(
        id=proposal_id_of(run.run_id),
        run_id=run.run_id,
        status=proposal_status(state, outcome, decision),
        run_state=state,
        note=run.note,
        queued_at=run.queued_at,
        start_date=run.start_date,
        end_date=run.end_date,
        conf=run.conf or {},
        triggered_by=run.triggering_user_name,
        outcome=outcome,
        decision=decision,
        created_at=run.created_at or run.run_after,
    )


def ui_link(run_id: str) -> str:
    """The proposal's run in the Airflow UI."""
    from airflow.sdk import conf

    return f"{conf.get('api', 'base_url', fallback='').rstrip('/')}/dags/{DAG_ID}/runs/{run_id}"


def review_deadline_passed(view: ProposalView, *, now: datetime) -> bool:
    deadline = (view.decision or {}).get("deadline")
    return bool(deadline) and datetime.fromisoformat(deadline) <= now


def waited(view: ProposalView, *, now: datetime) -> timedelta | None:
    created = (view.decision or {}).get("created_at")
    return now - datetime.fromisoformat(created) if created else None
