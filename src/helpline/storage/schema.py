"""The tables, as SQLAlchemy Core sees them; migrations create and change them.

Times are integer milliseconds since the Unix epoch, UTC: the same on every backend,
cheap to index, and the unit the Help API speaks (``startTimeMs``).
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

organizations = sa.Table(
    "organizations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("created_at_ms", sa.BigInteger, nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "organization_id", sa.Integer, sa.ForeignKey("organizations.id"), nullable=False
    ),
    sa.Column("prefix", sa.String(16), nullable=False, unique=True),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("user_email", sa.String(254), nullable=False),
    sa.Column("label", sa.String(200), nullable=True),
    sa.Column("permissions", sa.String(400), nullable=False),
    sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    sa.Column("last_used_at_ms", sa.BigInteger, nullable=True),
    sa.Column("revoked_at_ms", sa.BigInteger, nullable=True),
    sa.Index("ix_api_keys_organization_id", "organization_id"),
)

tickets = sa.Table(
    "tickets",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "organization_id", sa.Integer, sa.ForeignKey("organizations.id"), nullable=False
    ),
    sa.Column("api_key_id", sa.Integer, sa.ForeignKey("api_keys.id"), nullable=False),
    sa.Column("submitter_email", sa.String(254), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("subject", sa.Text, nullable=True),
    sa.Column("body", sa.Text, nullable=True),
    sa.Column("collaborators", sa.JSON, nullable=True),
    sa.Column("serial_numbers", sa.JSON, nullable=True),
    sa.Column("product_type", sa.String(100), nullable=True),
    sa.Column("service_type", sa.String(100), nullable=True),
    sa.Column("console_access_granted", sa.Boolean, nullable=True),
    sa.Column("console_access_expires_at_ms", sa.BigInteger, nullable=True),
    sa.Column("console_access_revoked_at_ms", sa.BigInteger, nullable=True),
    sa.Column("warnings", sa.JSON, nullable=True),
    sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    sa.Column("updated_at_ms", sa.BigInteger, nullable=False),
    sa.Index("ix_tickets_organization_created", "organization_id", "created_at_ms"),
)

ticket_events = sa.Table(
    "ticket_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("ticket_id", sa.Integer, sa.ForeignKey("tickets.id"), nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("actor", sa.String(254), nullable=False),
    sa.Column("before", sa.JSON, nullable=True),
    sa.Column("after", sa.JSON, nullable=True),
    sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    sa.Index("ix_ticket_events_ticket_id", "ticket_id"),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column(
        "organization_id",
        sa.Integer,
        sa.ForeignKey("organizations.id"),
        primary_key=True,
    ),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("ticket_id", sa.Integer, sa.ForeignKey("tickets.id"), nullable=False),
    sa.Column("warning_msg", sa.Text, nullable=True),
    sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    sa.Index("ix_idempotency_keys_created", "created_at_ms"),
)
