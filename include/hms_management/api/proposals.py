"""Proposals as the api-server reads them from Airflow's metadata database: start one, read one,
list and count them, the reviews awaiting a decision.

A proposal's status comes from what its workflow recorded — the run's state, the outcome the audit
step returned, the decision the gate kept (`domain.outcome.proposal_status`) — never from its run
note. Lists compute the same status in SQL, so filters and counts agree with a single proposal's
view; indexes of our own (`orchestration.metadata_indexes`) keep them fast with 100,000
proposals. Each function opens one short session; async callers run them in a thread.
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
from airflow.utils.state import DagRunState
from airflow.utils.types import DagRunTriggeredByType
from sqlalchemy import String, and_, case, cast, func, literal, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased, raiseload

from hms_management.domain.outcome import (
    AWAITING_GOVERNANCE,
    COMPLETED,
    DENIED,
    FAILED,
    NO_AUDIT_RECORD,
    OUTCOMES,
    QUEUED,
    REVIEW_TIMEOUT,
    RUNNING,
    STATUSES,
    proposal_status,
)
from hms_management.domain.priority import run_after_for
from hms_management.domain.proposal import DAG_ID, Proposal, proposal_id_of, run_id_for, same_proposal
from hms_management.domain.steps import DECISION_KEY, GOVERNANCE_GATE, RECORD_AUDIT, TASK_ORDER
from hms_management.orchestration.run_records import (
    RETURN_VALUE,
    as_object,
    decision_status,
    outcome_and_decision,
    recorded_outcome,
)

SUCCESS = DagRunState.SUCCESS.value  # a run that ended green: completed, denied, timed out, or parked
UNMAPPED = -1  # the map index of a task that is not mapped: all of the proposal DAG's
# A view reads the run's own columns only: a relationship read would be one more query per run (a
# page of 50 read each run's note, 51 queries, until the note left the view); it raises instead.
COLUMNS_ONLY = raiseload("*")
NOT_GREEN = tuple(state.value for state in DagRunState if state != DagRunState.SUCCESS)  # few: by index


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
        run = session.scalar(select(DagRun).options(COLUMNS_ONLY)
                             .where(DagRun.dag_id == DAG_ID, DagRun.run_id == run_id_for(proposal_id)))
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
            clauses += [columns.status == self.status, *columns.narrowing(self.status)]
        if self.submitter:
            # DagRun.conf is SQLAlchemy's generic JSON (jsonb on PostgreSQL): as_string() is its ->>.
            clauses.append(or_(DagRun.conf["submitted_by"].as_string() == self.submitter,
                               DagRun.triggering_user_name == self.submitter))
        if self.text:
            # Both expressions are in the trigram index hms_dag_run_proposal_text (metadata_indexes).
            pattern = "%" + self.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            clauses.append(or_(DagRun.run_id.ilike(pattern, escape="\\"),
                               DagRun.conf["title"].as_string().ilike(pattern, escape="\\")))
        return clauses

    @property
    def by_run_only(self) -> bool:
        return not (self.submitter or self.text)


def list_page(filters: Filters, limit: int, cursor: str | None, *,
              oldest_first: bool = False) -> tuple[list[ProposalView], str | None]:
    """Newest first (or oldest first: reviews nearest their deadline); the cursor is opaque to callers
    (the last run's row id)."""
    columns = _Columns()
    order = DagRun.id.asc() if oldest_first else DagRun.id.desc()
    query = (columns.select(DagRun, as_object(columns.audit.value), as_object(columns.gate.value))
             .options(COLUMNS_ONLY).where(*filters.where(columns)).order_by(order).limit(limit + 1))
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
    with create_session(scoped=False) as session:
        if filters.by_run_only:
            found = _counts_from_indexes(session)
        else:
            columns = _Columns()
            query = (columns.select(columns.status, func.count())
                     .where(*Filters(submitter=filters.submitter, text=filters.text).where(columns))
                     .group_by(columns.status))
            found = dict(session.execute(query).all())
    return {status: found.get(status, 0) for status in STATUSES}


def _counts_from_indexes(session: Any) -> dict[str, int]:
    """The same counts as grouping every proposal by `_Columns.status`, from four short reads of
    indexes: runs by state (Airflow's), the outcomes recorded (ours, counted without reading a row),
    the outcomes recorded by runs that did not end green (few), and the reviews still open (ours)."""
    columns = _Columns()
    by_state = dict(session.execute(select(columns.state, func.count())
                                    .where(DagRun.dag_id == DAG_ID).group_by(columns.state)).all())
    ending = (COMPLETED, DENIED, REVIEW_TIMEOUT)  # how a run that ended green may end
    recorded = dict(session.execute(select(columns.recorded, func.count()).select_from(columns.audit)
                                    .where(*columns.audit_record(), columns.recorded.in_(ending))
                                    .group_by(columns.recorded)).all())
    # A re-driven or cleared run keeps its last outcome until record_audit runs again: not its status.
    # (No condition on the outcome here: the planner then starts from these few runs, not the records.)
    not_green = dict(session.execute(
        select(columns.recorded, func.count()).select_from(DagRun)
        .join(columns.audit, and_(columns.audit.dag_run_id == DagRun.id, columns.audit.map_index == UNMAPPED,
                                  *columns.audit_record()))
        .where(DagRun.dag_id == DAG_ID, or_(DagRun.state.in_(NOT_GREEN), DagRun.state.is_(None)))
        .group_by(columns.recorded)).all())
    parked = session.scalar(columns.select(func.count()).where(
        DagRun.dag_id == DAG_ID, columns.status == AWAITING_GOVERNANCE, *columns.narrowing(AWAITING_GOVERNANCE)))
    found = {outcome: recorded.get(outcome, 0) - not_green.get(outcome, 0) for outcome in ending}
    green = by_state.pop(SUCCESS, 0)
    found |= {QUEUED: by_state.pop(QUEUED, 0), RUNNING: by_state.pop(RUNNING, 0), AWAITING_GOVERNANCE: parked}
    # The rest is failed: runs that failed (or have no state), and green runs without an outcome of `ending`.
    found[FAILED] = sum(by_state.values()) + green - parked - sum(found[outcome] for outcome in ending)
    return found


class _Columns:
    """The two records a status comes from, joined to their run, and the status computed from them
    in SQL exactly as `proposal_status` computes it in Python."""

    def __init__(self) -> None:
        self.audit = aliased(XComModel)
        self.gate = aliased(XComModel)
        self.recorded = recorded_outcome(self.audit.value)
        self.review = decision_status(self.gate.value)
        self.state = cast(DagRun.state, String)
        self.status = case(
            (self.state.in_((QUEUED, RUNNING)), self.state),
            (and_(self.state == SUCCESS, self.audit.value.is_(None), self.review == "review"),
             literal(AWAITING_GOVERNANCE)),
            (and_(self.state == SUCCESS, self.recorded.in_(OUTCOMES)), self.recorded),
            else_=literal(FAILED),
        )

    def audit_record(self) -> list[Any]:
        # dag_id first: the records' indexes (metadata_indexes) lead with it.
        return [self.audit.dag_id == DAG_ID, self.audit.task_id == RECORD_AUDIT, self.audit.key == RETURN_VALUE]

    def gate_record(self) -> list[Any]:
        return [self.gate.dag_id == DAG_ID, self.gate.task_id == GOVERNANCE_GATE, self.gate.key == DECISION_KEY]

    def narrowing(self, status: str) -> list[Any]:
        """Conditions every proposal of `status` meets, in terms an index can serve: the run's state,
        the outcome recorded, the decision's status. The status test itself stays the judge."""
        # `value IS NOT NULL`: a record that must be there turns its outer join into an inner one,
        # which lets the index serve the condition on it (the CASE in `as_object` is not strict).
        if status in (QUEUED, RUNNING):
            return [DagRun.state == status]
        if status == AWAITING_GOVERNANCE:
            return [DagRun.state == SUCCESS, self.gate.value.isnot(None), self.review == "review"]
        if status == FAILED:
            return [or_(DagRun.state != SUCCESS, DagRun.state.is_(None), self.recorded.is_(None),
                        self.recorded.notin_((COMPLETED, DENIED, REVIEW_TIMEOUT)))]
        return [DagRun.state == SUCCESS, self.audit.value.isnot(None), self.recorded == status]

    def select(self, *what: Any) -> Any:
        # Run row id, task id, map index, key: all of xcom's primary key, one exact look-up per run.
        return (select(*what).select_from(DagRun)
                .outerjoin(self.audit, and_(self.audit.dag_run_id == DagRun.id, self.audit.map_index == UNMAPPED,
                                            *self.audit_record()))
                .outerjoin(self.gate, and_(self.gate.dag_run_id == DagRun.id, self.gate.map_index == UNMAPPED,
                                           *self.gate_record())))


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
