"""Proposals as the api-server starts and reads them: a run started in Airflow, a record admitted in
the Management Layer's own database, and every read (one proposal, a page, the counts) from those
records alone (`records.store`), never from Airflow's tables or from a run note. Each function is
blocking; async callers run it in a thread.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.api.common.trigger_dag import trigger_dag
from airflow.exceptions import DagRunAlreadyExists
from airflow.utils.session import create_session
from airflow.utils.types import DagRunTriggeredByType
from sqlalchemy.exc import IntegrityError

from hms_management.domain.priority import run_after_for
from hms_management.domain.proposal import DAG_ID, Proposal, same_proposal
from hms_management.orchestration.records import records
from hms_management.records.store import Admission, Filters, Page, ProposalRecord

__all__ = ["Filters", "ProposalConflict", "admit", "counts", "get", "list_page", "start"]


class ProposalConflict(Exception):
    """The id is taken by a proposal with other content."""


def start(proposal: Proposal, user_name: str, *, now: datetime | None = None) -> tuple[ProposalRecord, bool]:
    """Start the proposal's run, or find it: (its record, whether it was started now)."""
    now = now or datetime.now(UTC)
    try:
        with create_session(scoped=False) as session:
            trigger_dag(DAG_ID, triggered_by=DagRunTriggeredByType.REST_API, run_id=proposal.run_id,
                        conf=proposal.as_conf(), triggering_user_name=user_name,
                        run_after=run_after_for(proposal.priority, now), session=session)
        started = True
    except (DagRunAlreadyExists, IntegrityError):  # IntegrityError: a concurrent twin won the race
        started = False
    # Admitted after its run exists: a crash in between leaves a run whose listener or first step
    # writes the record instead, never a record without a run.
    record = admit(proposal, user_name, now=now)
    if not started and not same_proposal(record.proposal, proposal):
        raise ProposalConflict(proposal.run_id)
    return record, started


def admit(proposal: Proposal, user_name: str | None, *, now: datetime) -> ProposalRecord:
    """The proposal's record, written at its admission (or as it already stands)."""
    record, _ = records(pooled=True).admit(Admission.of(proposal.as_conf(), run_id=proposal.run_id,
                                                        triggered_by=user_name, submitted_at=now))
    return record


def get(proposal_id: str) -> ProposalRecord | None:
    return records(pooled=True).get(proposal_id)


def list_page(filters: Filters, limit: int, cursor: str | None, *, oldest_first: bool = False) -> Page:
    return records(pooled=True).page(filters, limit, cursor, oldest_first=oldest_first)


def counts(filters: Filters) -> dict[str, int]:
    return records(pooled=True).counts(filters)


def ui_link(run_id: str) -> str:
    """The proposal's run in the Airflow UI."""
    from airflow.sdk import conf

    return f"{conf.get('api', 'base_url', fallback='').rstrip('/')}/dags/{DAG_ID}/runs/{run_id}"


def review_deadline_passed(record: ProposalRecord, *, now: datetime) -> bool:
    deadline = (record.decision or {}).get("deadline")
    return bool(deadline) and datetime.fromisoformat(deadline) <= now
