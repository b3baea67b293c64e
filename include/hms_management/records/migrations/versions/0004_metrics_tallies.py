"""The operators' metrics: tallies advanced from the records that changed since the last scrape.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Counters by name and label (a step, an outcome), a histogram's buckets by their bound.
    op.create_table(
        "metrics_tallies",
        sa.Column("tally", sa.Text, primary_key=True),
        sa.Column("label", sa.Text, primary_key=True, server_default=""),
        sa.Column("bucket", sa.Text, primary_key=True, server_default=""),
        sa.Column("value", sa.Float, nullable=False, server_default="0"),
    )
    # What was last counted of each item of a record (a step's end, the proposal's end, a
    # revocation), so that a record read again adds nothing.
    op.create_table(
        "metrics_marks",
        sa.Column("proposal_id", sa.Text, primary_key=True),
        sa.Column("item", sa.Text, primary_key=True),
        sa.Column("mark", sa.Text, nullable=False),
    )
    # Records changed at or after this time are read at the next scrape; one row.
    op.create_table(
        "metrics_cursor",
        sa.Column("id", sa.SmallInteger, primary_key=True),
        sa.Column("updated_at", sa.DateTime(timezone=True)),
        sa.Column("advanced_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("id = 1", name="metrics_cursor_one_row"),
    )
    op.execute("INSERT INTO metrics_cursor (id) VALUES (1)")
    # The records changed since the cursor, from an index: a scrape reads only those.
    op.create_index("proposals_by_updated_at", "proposals", ["updated_at"])


def downgrade() -> None:
    op.drop_index("proposals_by_updated_at", table_name="proposals")
    op.drop_table("metrics_cursor")
    op.drop_table("metrics_marks")
    op.drop_table("metrics_tallies")
