"""The tables of the Management Layer's database. Alembic's migrations (`migrations/versions`) create
and change them; this module names them for the queries, and must say what the newest migration made."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Identity, MetaData, Table, Text
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

# One row per proposal, from its admission on. `status`, `reason` and `failed_step` are settled by
# `domain.outcome.standing` from the facts beside them (run state, outcome, decision) whenever one
# of those changes, in the same transaction: never computed anywhere else.
proposals = Table(
    "proposals",
    metadata,
    Column("id", Text, primary_key=True),
    # The order of submission: lists page newest first by it (a cursor is the last one seen).
    Column("seq", BigInteger, Identity(always=True), nullable=False, unique=True),
    Column("run_id", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("reason", Text),
    Column("failed_step", Text),
    Column("title", Text),
    # Whom the proposal names as its submitter, and the Airflow user that submitted it.
    Column("named_submitter", Text),
    Column("triggered_by", Text),
    Column("priority", Text, nullable=False),
    Column("impact", Text, nullable=False),
    Column("proposal", JSONB, nullable=False),  # as admitted: the run's conf
    Column("run_state", Text, nullable=False),  # Airflow's state of the run, as last seen
    Column("decision", JSONB),  # what the governance gate decided
    Column("outcome", JSONB),  # what the audit step recorded
    Column("steps", JSONB, nullable=False),  # step → {state, tries, started_at, ended_at, error}
    Column("checks", JSONB, nullable=False),  # the decision log: each check before a step, in order
    Column("submitted_at", DateTime(timezone=True), nullable=False),
    Column("queued_at", DateTime(timezone=True), nullable=False),  # last (re)queued: deadlines count from it
    Column("started_at", DateTime(timezone=True)),
    Column("ended_at", DateTime(timezone=True)),
    Column("review_deadline", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

from sqlalchemy import Float, SmallInteger  # noqa: E402 (appended with migration 0004)

# The operators' metrics (migration 0004, records.metrics): counters advanced from the records changed
# since `metrics_cursor`, each record's items marked as counted in `metrics_marks` so that a record
# read twice adds nothing; the index proposals_by_updated_at finds the changed records.
metrics_tallies = Table(
    "metrics_tallies",
    metadata,
    Column("tally", Text, primary_key=True),
    Column("label", Text, primary_key=True, server_default=""),
    Column("bucket", Text, primary_key=True, server_default=""),
    Column("value", Float, nullable=False, server_default="0"),
)
metrics_marks = Table(
    "metrics_marks",
    metadata,
    Column("proposal_id", Text, primary_key=True),
    Column("item", Text, primary_key=True),
    Column("mark", Text, nullable=False),
)
metrics_cursor = Table(
    "metrics_cursor",
    metadata,
    Column("id", SmallInteger, primary_key=True),
    Column("updated_at", DateTime(timezone=True)),
    Column("advanced_at", DateTime(timezone=True)),
)
