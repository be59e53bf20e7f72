"""The rest of the Help Webservice: open-ticket listings, RMA, attachments, feedback.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN: rebuilding tickets would trip its children's foreign keys.
    op.add_column(
        "tickets",
        sa.Column("is_open", sa.Boolean, nullable=False, server_default=sa.true()),
    )
    op.execute("UPDATE tickets SET is_open = status IN ('Open', 'Pending')")
    op.create_index(
        "ix_tickets_open_by_organization",
        "tickets",
        ["organization_id", "is_open", "created_at_ms", "id"],
    )
    op.create_index(
        "ix_tickets_open_by_submitter",
        "tickets",
        ["organization_id", "submitter_email", "is_open", "created_at_ms", "id"],
    )

    op.create_table(
        "organization_counters",
        sa.Column(
            "organization_id",
            sa.Integer,
            sa.ForeignKey("organizations.id"),
            primary_key=True,
        ),
        sa.Column("open_tickets", sa.Integer, nullable=False),
    )
    op.execute(
        "INSERT INTO organization_counters (organization_id, open_tickets) "
        "SELECT o.id, (SELECT count(*) FROM tickets AS t "
        "WHERE t.organization_id = o.id AND t.is_open) FROM organizations AS o"
    )

    op.create_table(
        "rma_requests",
        sa.Column(
            "ticket_id", sa.Integer, sa.ForeignKey("tickets.id"), primary_key=True
        ),
        sa.Column("contact_name", sa.String(200), nullable=True),
        sa.Column("contact_phone_number", sa.String(32), nullable=True),
        sa.Column("device_name", sa.String(200), nullable=True),
        sa.Column("problem", sa.Text, nullable=False),
        sa.Column("serial_number", sa.String(40), nullable=False),
        sa.Column("street", sa.String(200), nullable=False),
        sa.Column("city", sa.String(200), nullable=False),
        sa.Column("state", sa.String(200), nullable=True),
        sa.Column("postal_code", sa.String(200), nullable=False),
        sa.Column("country", sa.String(200), nullable=False),
    )

    op.create_table(
        "attachments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("ticket_id", sa.Integer, sa.ForeignKey("tickets.id"), nullable=False),
        sa.Column("file_name", sa.String(255), nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_attachments_ticket_id", "attachments", ["ticket_id"])
    op.create_index("ix_attachments_sha256", "attachments", ["sha256"])

    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "organization_id",
            sa.Integer,
            sa.ForeignKey("organizations.id"),
            nullable=False,
        ),
        sa.Column(
            "api_key_id", sa.Integer, sa.ForeignKey("api_keys.id"), nullable=False
        ),
        sa.Column("user_email", sa.String(254), nullable=False),
        sa.Column("feedback", sa.Text, nullable=False),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    )
    op.create_index(
        "ix_feedback_organization_created",
        "feedback",
        ["organization_id", "created_at_ms"],
    )

    with op.batch_alter_table("idempotency_keys") as claims:
        claims.alter_column("ticket_id", existing_type=sa.Integer, nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("idempotency_keys") as claims:
        claims.alter_column("ticket_id", existing_type=sa.Integer, nullable=False)
    op.drop_table("feedback")
    op.drop_table("attachments")
    op.drop_table("rma_requests")
    op.drop_table("organization_counters")
    op.drop_index("ix_tickets_open_by_submitter", "tickets")
    op.drop_index("ix_tickets_open_by_organization", "tickets")
    with op.batch_alter_table("tickets") as tickets:
        tickets.drop_column("is_open")
