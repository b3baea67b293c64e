"""Rate budgets: one shared bucket per HMS service, for every worker on every machine.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_budgets",
        sa.Column("service", sa.Text, primary_key=True),
        sa.Column("per_second", sa.Float, nullable=False),
        sa.Column("burst", sa.Integer, nullable=False),
        # GCRA's theoretical arrival time: the next call at an even pace is due then.
        sa.Column("tat", sa.DateTime(timezone=True)),
        # A 429 with Retry-After holds every caller of the service back until then.
        sa.Column("held_until", sa.DateTime(timezone=True)),
        sa.Column("waits", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("throttled", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.Text, nullable=False),
        sa.CheckConstraint("per_second > 0", name="rate_budgets_per_second_positive"),
        sa.CheckConstraint("burst >= 1", name="rate_budgets_burst_at_least_one"),
    )


def downgrade() -> None:
    op.drop_table("rate_budgets")
