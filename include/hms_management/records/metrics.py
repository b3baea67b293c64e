"""The figures behind `GET /management/metrics`, read from the Management Layer's database at each scrape.

Cheap at any number of proposals (docs/metrics.md, "What a scrape costs"):
- proposals by status: the same grouped count as /management/counts (`Records.counts`), from the
  index on (status, seq);
- the oldest review and the nearest review deadline: the records in review only;
- how steps went and how proposals ended: tallies (migration 0004) that each scrape first advances
  from the records changed since the last one (`metrics_cursor`, index proposals_by_updated_at),
  never by reading every record again. What a record adds is `domain.metrics.count`; the marks it
  leaves (`metrics_marks`) make a record read twice add nothing, so the cursor can stay a margin
  behind (`LAG`) and still catch a write whose transaction committed after a later one's.

Two api-server processes (or more machines) scrape at once: the advance runs under a PostgreSQL
advisory lock taken without waiting; a scrape that does not get it reads the tallies as they stand.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, Engine, func, select, text

from hms_management.domain.metrics import Increment, count
from hms_management.domain.outcome import AWAITING_GOVERNANCE
from hms_management.records.schema import metrics_cursor, metrics_marks, metrics_tallies, proposals
from hms_management.records.store import Filters, Records

# The cursor stays this far behind the newest change read: a record's `updated_at` is its writer's
# clock when it wrote, and a transaction may commit (a worker's clock may run) that much later.
LAG = timedelta(seconds=30)
# Most records one scrape reads: after an upgrade over many records, the tallies catch up over a few
# scrapes (or at once in the set-up, `catch_up`), and no scrape takes long.
BATCH = 5000
# The advisory lock of the advance (any number of our own; "hms_metr" in ASCII).
ADVANCE_LOCK = 0x686D735F6D657472
MARK = text("""
INSERT INTO metrics_marks (proposal_id, item, mark)
SELECT * FROM unnest(CAST(:ids AS text[]), CAST(:items AS text[]), CAST(:marks AS text[]))
ON CONFLICT (proposal_id, item) DO UPDATE SET mark = excluded.mark
""")
ADD = text("""
INSERT INTO metrics_tallies (tally, label, bucket, value)
SELECT * FROM unnest(CAST(:tallies AS text[]), CAST(:labels AS text[]), CAST(:buckets AS text[]),
                     CAST(:values AS double precision[]))
ON CONFLICT (tally, label, bucket) DO UPDATE SET value = metrics_tallies.value + excluded.value
""")


@dataclass(frozen=True)
class Reviews:
    """The proposals awaiting a reviewer: how many, since when the oldest waits, the nearest deadline."""

    waiting: int
    oldest_since: datetime | None
    nearest_deadline: datetime | None


@dataclass
class Figures:
    """Everything a scrape reports from the database, read at one moment (`now`, the database's clock)."""

    now: datetime
    counts: dict[str, int]
    reviews: Reviews
    tallies: dict[str, dict[tuple[str, str], float]] = field(default_factory=dict)  # tally → (label, bucket) → value
    advanced: int | None = None  # records read by this scrape's advance; None: another process was at it


class Metrics:
    """The operators' figures of one records database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def figures(self, *, advance: bool = True) -> Figures:
        advanced = self.advance() if advance else None
        with self.engine.connect() as db:
            now = db.scalar(text("SELECT clock_timestamp()"))
            reviews = self._reviews(db)
            rows = db.execute(select(metrics_tallies)).all()
        tallies: dict[str, dict[tuple[str, str], float]] = defaultdict(dict)
        for row in rows:
            tallies[row.tally][(row.label, row.bucket)] = row.value
        counts = Records(self.engine).counts(Filters())
        return Figures(now, counts, reviews, dict(tallies), advanced)

    def advance(self, *, batch: int = BATCH) -> int | None:
        """Add what the records changed since the cursor say to the tallies, at most `batch` records;
        how many were read (None: another process holds the advance)."""
        with self.engine.begin() as db:
            if not db.scalar(select(func.pg_try_advisory_xact_lock(ADVANCE_LOCK))):
                return None
            cursor = db.execute(select(metrics_cursor.c.updated_at).where(metrics_cursor.c.id == 1)
                                .with_for_update()).scalar_one_or_none()
            now = db.scalar(text("SELECT clock_timestamp()"))
            query = (select(proposals.c.id, proposals.c.status, proposals.c.ended_at, proposals.c.steps,
                            proposals.c.decision, proposals.c.updated_at)
                     .order_by(proposals.c.updated_at, proposals.c.id).limit(batch))
            if cursor is not None:
                query = query.where(proposals.c.updated_at >= cursor)
            rows = db.execute(query).all()
            if not rows:
                return 0
            ids = [row.id for row in rows]
            seen: dict[str, dict[str, str]] = defaultdict(dict)
            for mark in db.execute(select(metrics_marks).where(metrics_marks.c.proposal_id.in_(ids))):
                seen[mark.proposal_id][mark.item] = mark.mark
            added: dict[tuple[str, str, str], float] = defaultdict(float)
            marks = []
            for row in rows:
                counted = count(status=row.status, ended_at=row.ended_at, steps=row.steps, decision=row.decision,
                                seen=seen[row.id])
                for increment in counted.increments:
                    added[_key(increment)] += increment.by
                marks += [(row.id, item, mark) for item, mark in counted.marks.items()]
            # Thousands of rows in one statement, as three arrays: neither a VALUES list to compile
            # nor a round trip per row.
            if marks:
                db.execute(MARK, {"ids": [m[0] for m in marks], "items": [m[1] for m in marks],
                                  "marks": [m[2] for m in marks]})
            if added:
                keys = list(added)
                db.execute(ADD, {"tallies": [k[0] for k in keys], "labels": [k[1] for k in keys],
                                 "buckets": [k[2] for k in keys], "values": [added[k] for k in keys]})
            # Never past the margin: a record written a moment ago may still have an older neighbour
            # whose transaction has not committed.
            moved = min(rows[-1].updated_at, now - LAG)
            if cursor is None or moved > cursor:
                db.execute(metrics_cursor.update().where(metrics_cursor.c.id == 1)
                           .values(updated_at=moved, advanced_at=now))
            return len(rows)

    def catch_up(self, *, batch: int = BATCH) -> int:
        """Advance until fewer than `batch` records are left to read, or the cursor stops moving (the
        records of the last LAG, more than a batch, are read again by each scrape); records read."""
        read, last = 0, object()
        while (found := self.advance(batch=batch)) and (cursor := self._cursor()) != last:
            read, last = read + found, cursor
            if found < batch:
                break
        return read

    def _cursor(self) -> datetime | None:
        with self.engine.connect() as db:
            return db.scalar(select(metrics_cursor.c.updated_at).where(metrics_cursor.c.id == 1))

    @staticmethod
    def _reviews(db: Any) -> Reviews:
        # Served by the index on (status, seq): only the records in review are read.
        since = proposals.c.decision["created_at"].astext
        deadline = proposals.c.decision["deadline"].astext
        row = db.execute(select(func.count(), func.min(func.cast(since, DateTime(timezone=True))),
                                func.min(func.cast(deadline, DateTime(timezone=True))),
                                func.min(proposals.c.queued_at))
                         .where(proposals.c.status == AWAITING_GOVERNANCE)).one()
        return Reviews(row[0], row[1] or row[3], row[2])


def _key(increment: Increment) -> tuple[str, str, str]:
    return increment.tally, increment.label, increment.bucket
