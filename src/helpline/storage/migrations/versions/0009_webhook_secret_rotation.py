"""A webhook's secret can be rotated without a gap: the secret it replaced keeps
signing deliveries, beside the new one, until a time the operator chose, so that
a receiver can switch to the new secret whenever it is ready.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "webhooks", sa.Column("previous_secret", sa.String(100), nullable=True)
    )
    op.add_column(
        "webhooks",
        sa.Column("previous_secret_until_ms", sa.BigInteger, nullable=True),
    )


def downgrade() -> None:
    op.drop_column("webhooks", "previous_secret_until_ms")
    op.drop_column("webhooks", "previous_secret")
