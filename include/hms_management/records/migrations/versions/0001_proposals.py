"""One record per proposal, and the indexes the Proposals view and /management read it by.

Revision ID: 0001
Revises:
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "proposals",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("seq", sa.BigInteger, sa.Identity(always=True), nullable=False, unique=True),
        sa.Column("run_id", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("failed_step", sa.Text),
        sa.Column("title", sa.Text),
        sa.Column("named_submitter", sa.Text),
        sa.Column("triggered_by", sa.Text),
        sa.Column("priority", sa.Text, nullable=False),
        sa.Column("impact", sa.Text, nullable=False),
        sa.Column("proposal", JSONB, nullable=False),
        sa.Column("run_state", sa.Text, nullable=False),
        sa.Column("decision", JSONB),
        sa.Column("outcome", JSONB),
        sa.Column("steps", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("ended_at", sa.DateTime(timezone=True)),
        sa.Column("review_deadline", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    # A status's proposals newest first, and the counts per status, from the index alone.
    op.create_index("proposals_by_status", "proposals", ["status", "seq"])
    # "Submitted by": whom the proposal names, or the user that submitted it (two short scans).
    op.create_index("proposals_by_named_submitter", "proposals", ["named_submitter", "seq"])
    op.create_index("proposals_by_triggered_by", "proposals", ["triggered_by", "seq"])
    # Reviews nearest their deadline first.
    op.create_index("proposals_in_review_by_deadline", "proposals", ["review_deadline", "seq"],
                    postgresql_where=sa.text("status = 'awaiting_governance'"))
    # "Id or title contains": a trigram index turns ILIKE '%…%' into an index look-up. pg_trgm ships
    # with PostgreSQL and is trusted (a database owner may enable it); where it cannot be enabled,
    # text filters scan every record: slower, never different.
    bind = op.get_bind()
    savepoint = bind.begin_nested()
    try:
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except sa.exc.DBAPIError:
        savepoint.rollback()
        return
    savepoint.commit()
    op.execute("CREATE INDEX proposals_by_text ON proposals USING gin (id gin_trgm_ops, title gin_trgm_ops)")


def downgrade() -> None:
    op.drop_table("proposals")
