"""The records keeper: proposal records repaired from Airflow's own records when they disagree.

The scheduler's listener writes a run's state into its record as the run starts and ends
(`orchestration.run_listener`). A write can be lost — the scheduler killed between a run's end and
its write, the records' database briefly unreachable. Every `[hms_management]
records_repair_seconds`, the api-server compares, both ways, what is at work:

- records that say queued or running, untouched for a while: their runs' states in Airflow;
- runs Airflow has queued or running: their records (missing, or saying something else).

Where they disagree, Airflow's run is the truth for the run's state; the record settles its status
again from it (`records.store`). A record written meanwhile is left alone (the write that raced it
is newer). Two api-server processes may both repair: every write is idempotent.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from anyio import to_thread

from hms_management.domain.outcome import QUEUED, RUN_DELETED, RUNNING
from hms_management.domain.proposal import DAG_ID, proposal_id_of
from hms_management.orchestration.config import settings
from hms_management.orchestration.records import records
from hms_management.orchestration.run_listener import admission_of, run_facts

log = logging.getLogger(__name__)
# A record written this recently may still be catching up with its run (a step's write, the
# listener's): it is not judged yet.
GRACE = timedelta(seconds=10)


async def keep() -> None:
    """Repair, then wait, for as long as the api-server runs."""
    while True:
        try:
            repaired = await to_thread.run_sync(repair)
            if repaired:
                log.warning("records keeper: repaired %d record(s) from Airflow's runs: %s", len(repaired),
                            ", ".join(repaired[:20]))
        except asyncio.CancelledError:
            raise
        except Exception:  # the database is down, say: try again next time, never stop keeping
            log.exception("records keeper: could not compare the records with Airflow's runs")
        await asyncio.sleep(settings().records_repair_seconds)


def repair(now: datetime | None = None) -> list[str]:
    """Compare once, both ways; the ids of the records repaired."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    now = now or datetime.now(UTC)
    store = records(pooled=True)
    repaired: list[str] = []
    with create_session(scoped=False) as session:
        # Columns, not whole records and ORM runs: with 1,000 proposals parked in review, this is
        # most of what an idle api-server does (docs/performance.md, "An idle stack").
        stale = {record.run_id: record for record in store.unsettled_runs(updated_before=now - GRACE)}
        runs = {run.run_id: run for run in session.execute(
            select(DagRun.run_id, DagRun.state, DagRun.queued_at, DagRun.start_date, DagRun.end_date)
            .where(DagRun.dag_id == DAG_ID, DagRun.run_id.in_(stale)))} if stale else {}
        for run_id, record in stale.items():
            run = runs.get(run_id)
            facts = run_facts(run) if run is not None else {"run_state": RUN_DELETED, "ended_at": now}
            if facts["run_state"] != record.run_state and \
                    store.change(record.id, if_updated_at=record.updated_at, **facts):
                repaired.append(record.id)
        active = session.scalars(select(DagRun).where(DagRun.dag_id == DAG_ID,
                                                      DagRun.state.in_((QUEUED, RUNNING)))).all()
        known = store.run_states([proposal_id_of(run.run_id) for run in active])
        for run in active:
            proposal_id = proposal_id_of(run.run_id)
            seen = known.get(proposal_id)
            disagrees = seen is None or (seen[0] != str(run.state) and seen[1] < now - GRACE)
            if disagrees and store.change(proposal_id, admission=admission_of(run),
                                          if_updated_at=seen[1] if seen else None, **run_facts(run)):
                repaired.append(proposal_id)
    return repaired
