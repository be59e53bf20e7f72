"""Rate-limit buckets in the database, shared by every node on PostgreSQL.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
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
        "rate_limit_buckets",
        sa.Column(
            "organization_id",
            sa.Integer,
            sa.ForeignKey("organizations.id"),
            primary_key=True,
        ),
        sa.Column("tokens", sa.Float, nullable=False),
        sa.Column("refilled_at_ms", sa.BigInteger, nullable=False),
        sa.Column("granted", sa.Boolean, nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        # Buckets are worth nothing after a crash: skip the write-ahead log.
        op.execute("ALTER TABLE rate_limit_buckets SET UNLOGGED")


def downgrade() -> None:
    op.drop_table("rate_limit_buckets")
