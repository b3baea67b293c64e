"""Reading and writing proposal records.

Every write goes through `change()`: it locks the record, merges the new facts into it and settles
its status with `domain.outcome.standing`, in one transaction, so two writers (a step and the
scheduler's listener, say) never leave a status that neither's facts would give. Reads are single
indexed queries: a record by id, a page of records by status, submitter or text, and the counts.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Select, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection

from hms_management.domain.outcome import AWAITING_GOVERNANCE, OUTCOMES, QUEUED, RUNNING, STATUSES, standing
from hms_management.domain.proposal import DEFAULT_SCOPE, proposal_id_of, run_id_for
from hms_management.domain.steps import APPLY_POLICY, NOTIFY_OFFICERS, TASK_ORDER
from hms_management.records.schema import proposals

# Facts a writer may set; `steps` is merged step by step, `checks` appended to, the others replace
# what was there.
FACTS = ("run_state", "decision", "outcome", "steps", "checks", "queued_at", "started_at", "ended_at")
CURSOR_KIND = "rec"
# The channel a proposal's admission and a run queued again notify: an idle scheduler rests until
# it hears it (orchestration.executor).
NEW_WORK = "hms_new_work"


@dataclass(frozen=True)
class ProposalRecord:
    """A proposal as its record holds it."""

    id: str
    run_id: str
    seq: int
    status: str
    reason: str | None
    failed_step: str | None
    title: str | None
    named_submitter: str | None
    triggered_by: str | None
    priority: str
    impact: str
    proposal: dict[str, Any]
    run_state: str
    decision: dict[str, Any] | None
    outcome: dict[str, Any] | None
    steps: dict[str, dict[str, Any]]
    checks: list[dict[str, Any]]
    submitted_at: datetime
    queued_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> ProposalRecord:
        return cls(**{f.name: row[f.name] for f in fields(cls)})

    @property
    def terminal(self) -> bool:
        return self.status in OUTCOMES

    @property
    def submitted_by(self) -> str | None:
        """Whom the proposal names, else the user that submitted it."""
        return self.named_submitter or self.triggered_by

    @property
    def submitters(self) -> set[str]:
        """Who raised it: the user that submitted it, and whom the proposal names (four-eyes)."""
        return {name for name in (self.triggered_by, self.named_submitter) if name}

    def targets(self) -> list[dict[str, Any]]:
        """Each target of the proposal — its policy scopes, then the officer groups told — with what
        its step's entry holds of it (state, tries, result or error; nothing before the step ran)."""
        conf = self.proposal
        scopes = [t.get("scope") for t in conf.get("targets") or [] if isinstance(t, dict)]
        scopes = scopes or ([DEFAULT_SCOPE] if "rule" in conf else [])
        policy = (self.steps.get(APPLY_POLICY) or {}).get("targets") or {}
        told = (self.steps.get(NOTIFY_OFFICERS) or {}).get("targets") or {}
        groups = [g for g in conf.get("notify") or [] if isinstance(g, str)]
        groups += [group for group in told if group not in groups]  # the default group, once told
        return ([{"step": APPLY_POLICY, "target": scope, **(policy.get(scope) or {})} for scope in scopes]
                + [{"step": NOTIFY_OFFICERS, "target": group, **(told.get(group) or {})} for group in groups])

    def shown_steps(self) -> list[tuple[str, dict[str, Any]]]:
        """The workflow's steps in order with what the record holds of each ({} before it ran)."""
        return [(step, self.steps.get(step) or {}) for step in TASK_ORDER]


@dataclass(frozen=True)
class Admission:
    """What a record starts from: the proposal as admitted (a run's conf), who submitted it, when."""

    proposal_id: str
    proposal: dict[str, Any]
    triggered_by: str | None
    submitted_at: datetime
    run_state: str = QUEUED

    @classmethod
    def of(cls, conf: Any, *, run_id: str, triggered_by: str | None, submitted_at: datetime,
           run_state: str = QUEUED) -> Admission:
        """From a run's conf as Airflow holds it, valid or not (a run made around the admission
        check still gets a record, which says how it failed)."""
        conf = conf if isinstance(conf, dict) else {}
        return cls(proposal_id_of(run_id), conf, triggered_by, submitted_at, run_state)

    def row(self) -> dict[str, Any]:
        conf = self.proposal

        def text(key: str, default: str | None = None) -> str | None:
            value = conf.get(key, default)
            return value if isinstance(value, str) else default

        return {
            "id": self.proposal_id, "run_id": run_id_for(self.proposal_id), "status": self.run_state,
            "title": text("title"), "named_submitter": text("submitted_by"), "triggered_by": self.triggered_by,
            "priority": text("priority", "normal"), "impact": text("impact", "normal"), "proposal": conf,
            "run_state": self.run_state, "steps": {}, "checks": [], "submitted_at": self.submitted_at,
            "queued_at": self.submitted_at, "updated_at": _now(),
        }


@dataclass(frozen=True)
class Filters:
    status: str | None = None
    submitter: str | None = None  # whom the proposal names, or the user that submitted it
    text: str | None = None  # in the id or the title, any case

    def where(self) -> list[Any]:
        clauses = []
        if self.status is not None:
            clauses.append(proposals.c.status == self.status)
        if self.submitter:
            clauses.append(or_(proposals.c.named_submitter == self.submitter,
                               proposals.c.triggered_by == self.submitter))
        if self.text:
            # Served by the trigram index proposals_by_text (migration 0001).
            pattern = "%" + self.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            clauses.append(or_(proposals.c.id.ilike(pattern, escape="\\"),
                               proposals.c.title.ilike(pattern, escape="\\")))
        return clauses


@dataclass
class Page:
    records: list[ProposalRecord] = field(default_factory=list)
    next_cursor: str | None = None


class Records:
    """The proposal records of one database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- writes ----------------------------------------------------------------------------------

    def admit(self, admission: Admission) -> tuple[ProposalRecord, bool]:
        """The proposal's record, created now unless it exists: (the record, whether it is new)."""
        with self.engine.begin() as db:
            inserted = db.execute(insert(proposals).values(**admission.row())
                                  .on_conflict_do_nothing(index_elements=["id"])
                                  .returning(*proposals.c)).mappings().first()
            if inserted is not None:
                db.execute(text(f"NOTIFY {NEW_WORK}"))  # sent at commit
                return ProposalRecord.from_row(inserted), True
            return ProposalRecord.from_row(_locked(db, admission.proposal_id, lock=False)), False

    def change(self, proposal_id: str, *, admission: Admission | None = None, if_updated_at: datetime | None = None,
               running: bool = False, **facts: Any) -> ProposalRecord | None:
        """Merge `facts` into the proposal's record and settle its status again; the record as it
        now stands. A record that does not exist yet is created from `admission` (None: nothing
        done). `if_updated_at`: only if nobody wrote the record since (None when it changed).
        `running`: a task of the run is at work, so a run still recorded as queued is running."""
        unknown = set(facts) - set(FACTS)
        if unknown:
            raise TypeError(f"not a fact of a proposal record: {', '.join(sorted(unknown))}")
        with self.engine.begin() as db:
            row = _locked(db, proposal_id)
            if row is not None and if_updated_at is not None and row["updated_at"] != if_updated_at:
                return None
            if row is None:
                if admission is None:
                    return None
                db.execute(insert(proposals).values(**admission.row()).on_conflict_do_nothing(index_elements=["id"]))
                row = _locked(db, proposal_id)
            if running and row["run_state"] == QUEUED:
                facts = {"run_state": RUNNING, "started_at": row["started_at"] or _now(), **facts}
            merged = dict(row)
            for name, value in facts.items():
                if name == "steps":
                    value = {**(row["steps"] or {}), **value}
                elif name == "checks":
                    value = [*(row["checks"] or []), *value]
                merged[name] = value
            settled = standing(merged["run_state"], merged["outcome"], merged["decision"])
            values = {name: merged[name] for name in facts}
            values |= {"status": settled.status, "reason": settled.reason, "failed_step": settled.failed_step,
                       "updated_at": _now()}
            changed = db.execute(update(proposals).where(proposals.c.id == proposal_id).values(**values)
                                 .returning(*proposals.c)).mappings().one()
            if facts.get("run_state") == QUEUED:  # resumed or re-driven: its run waits for a scheduler
                db.execute(text(f"NOTIFY {NEW_WORK}"))
            return ProposalRecord.from_row(changed)

    # -- reads -----------------------------------------------------------------------------------

    def get(self, proposal_id: str) -> ProposalRecord | None:
        with self.engine.connect() as db:
            row = db.execute(select(proposals).where(proposals.c.id == proposal_id)).mappings().first()
        return ProposalRecord.from_row(row) if row is not None else None

    def page(self, filters: Filters, limit: int, cursor: str | None = None, *, oldest_first: bool = False) -> Page:
        """Records newest first (oldest first: reviews nearest their deadline), `limit` at most."""
        order = proposals.c.seq.asc() if oldest_first else proposals.c.seq.desc()
        query: Select = select(proposals).where(*filters.where()).order_by(order).limit(limit + 1)
        if cursor is not None:
            after = decode_cursor(cursor)
            query = query.where(proposals.c.seq > after if oldest_first else proposals.c.seq < after)
        with self.engine.connect() as db:
            rows = db.execute(query).mappings().all()
        found = [ProposalRecord.from_row(row) for row in rows[:limit]]
        return Page(found, encode_cursor(found[-1].seq) if len(rows) > limit else None)

    def counts(self, filters: Filters) -> dict[str, int]:
        """How many proposals are in each status (every status, zero included)."""
        query = select(proposals.c.status, func.count()).where(*filters.where()).group_by(proposals.c.status)
        with self.engine.connect() as db:
            found = dict(db.execute(query).all())
        return {status: found.get(status, 0) for status in STATUSES}

    def run_states(self, proposal_ids: list[str]) -> dict[str, tuple[str, datetime]]:
        """The run state each of these records holds, and when it was last written."""
        if not proposal_ids:
            return {}
        query = select(proposals.c.id, proposals.c.run_state, proposals.c.updated_at).where(
            proposals.c.id.in_(proposal_ids))
        with self.engine.connect() as db:
            return {row.id: (row.run_state, row.updated_at) for row in db.execute(query)}

    def unsettled(self, *, updated_before: datetime) -> Iterator[ProposalRecord]:
        """Records not ended (queued, running, parked in review) and untouched since `updated_before`."""
        with self.engine.connect() as db:
            for row in db.execute(_unsettled(updated_before, proposals)).mappings():
                yield ProposalRecord.from_row(row)

    def unsettled_runs(self, *, updated_before: datetime) -> list[Any]:
        """The same records' `id`, `run_id`, `run_state` and `updated_at` only: what the keeper compares
        with Airflow's runs, every few seconds, for every proposal parked in review."""
        query = _unsettled(updated_before, proposals.c.id, proposals.c.run_id, proposals.c.run_state,
                           proposals.c.updated_at)
        with self.engine.connect() as db:
            return db.execute(query).all()


def _unsettled(updated_before: datetime, *columns: Any) -> Select:
    return select(*columns).where(
        proposals.c.status.in_((QUEUED, RUNNING, AWAITING_GOVERNANCE)),
        proposals.c.updated_at < updated_before).order_by(proposals.c.seq)


def _locked(db: Connection, proposal_id: str, *, lock: bool = True) -> Any:
    query = select(proposals).where(proposals.c.id == proposal_id)
    return db.execute(query.with_for_update() if lock else query).mappings().first()


def _now() -> datetime:
    return datetime.now(UTC)


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"{CURSOR_KIND}:{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """Raises ValueError for anything this API did not hand out."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise ValueError("not a cursor of this API") from None
    kind, _, number = text.partition(":")
    if kind != CURSOR_KIND or not number.isdigit() or len(number) > 18:
        raise ValueError("not a cursor of this API")
    return int(number)
