"""Open tickets counted per organization and day of creation, for deep pages.

``openTickets`` page N skipped (N - 1) x 100 index entries with OFFSET; with each
day's count of open tickets the listing finds the day a page starts in and skips
only within it. The counts of tickets that exist are taken here, in one statement;
the servers keep them from then on.

``day`` is the ticket's creation time in whole UTC days since the epoch, rounded
down. Both engines' ``/`` on integers rounds toward zero instead, so a time before
1970 (which Helpline never writes, but a restored database might hold) is moved a
day back first.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_DAY = (
    "(created_at_ms - CASE WHEN created_at_ms < 0 THEN 86399999 ELSE 0 END) / 86400000"
)
_COUNT_DAYS = f"""
INSERT INTO open_ticket_days (organization_id, day, open_tickets)
SELECT organization_id, {_DAY}, count(*) FROM tickets WHERE is_open
GROUP BY 1, 2
"""  # noqa: S608 - only our own expression is formatted in


def upgrade() -> None:
    op.create_table(
        "open_ticket_days",
        sa.Column(
            "organization_id",
            sa.Integer,
            sa.ForeignKey("organizations.id"),
            primary_key=True,
        ),
        sa.Column("day", sa.BigInteger, primary_key=True),
        sa.Column("open_tickets", sa.Integer, nullable=False),
    )
    op.execute(_COUNT_DAYS)


def downgrade() -> None:
    op.drop_table("open_ticket_days")
