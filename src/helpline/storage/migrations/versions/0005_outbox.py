"""The notification outbox: webhooks, the messages waiting to be delivered, and
the mark on each ticket event that the dispatcher has yet to read.

Events written before this revision are left unmarked: upgrading mails nobody
about tickets that already exist.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_PENDING_EVENTS = sa.text("outbox_pending IS NOT NULL")
_DUE_MESSAGES = sa.text("state = 'pending'")


def upgrade() -> None:
    # A plain ADD COLUMN on both engines: existing rows read NULL, "nothing to send".
    op.add_column(
        "ticket_events", sa.Column("outbox_pending", sa.SmallInteger, nullable=True)
    )
    op.create_index(
        "ix_ticket_events_outbox_pending",
        "ticket_events",
        ["id"],
        sqlite_where=_PENDING_EVENTS,
        postgresql_where=_PENDING_EVENTS,
    )
    op.create_table(
        "webhooks",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "organization_id",
            sa.Integer,
            sa.ForeignKey("organizations.id"),
            nullable=False,
        ),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("secret", sa.String(100), nullable=False),
        sa.Column("events", sa.JSON, nullable=True),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_webhooks_organization_id", "webhooks", ["organization_id"])
    op.create_table(
        "outbox_messages",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "event_id", sa.Integer, sa.ForeignKey("ticket_events.id"), nullable=False
        ),
        sa.Column("ticket_id", sa.Integer, sa.ForeignKey("tickets.id"), nullable=False),
        sa.Column("channel", sa.String(10), nullable=False),
        sa.Column("event_type", sa.String(40), nullable=False),
        sa.Column("webhook_id", sa.Integer, nullable=True),
        sa.Column("destination", sa.String(2000), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at_ms", sa.BigInteger, nullable=False),
        sa.Column("lease_until_ms", sa.BigInteger, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
        sa.Column("sent_at_ms", sa.BigInteger, nullable=True),
    )
    op.create_index(
        "ix_outbox_messages_due",
        "outbox_messages",
        ["channel", "next_attempt_at_ms"],
        sqlite_where=_DUE_MESSAGES,
        postgresql_where=_DUE_MESSAGES,
    )
    op.create_index("ix_outbox_messages_state", "outbox_messages", ["state", "id"])
    op.create_index("ix_outbox_messages_ticket_id", "outbox_messages", ["ticket_id"])
    op.create_table(
        "outbox_leases",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("holder", sa.String(100), nullable=False),
        sa.Column("expires_at_ms", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("outbox_leases")
    for index in (
        "ix_outbox_messages_ticket_id",
        "ix_outbox_messages_state",
        "ix_outbox_messages_due",
    ):
        op.drop_index(index, "outbox_messages")
    op.drop_table("outbox_messages")
    op.drop_index("ix_webhooks_organization_id", "webhooks")
    op.drop_table("webhooks")
    op.drop_index("ix_ticket_events_outbox_pending", "ticket_events")
    with op.batch_alter_table("ticket_events") as events:
        events.drop_column("outbox_pending")
