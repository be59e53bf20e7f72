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
    # 1 while the status counts as open (Open, Pending): the listings' index key.
    sa.Column("is_open", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column(
        "assignee_agent_id", sa.Integer, sa.ForeignKey("agents.id"), nullable=True
    ),
    sa.Index("ix_tickets_organization_created", "organization_id", "created_at_ms"),
    sa.Index(
        "ix_tickets_open_by_organization",
        "organization_id",
        "is_open",
        "created_at_ms",
        "id",
    ),
    sa.Index("ix_tickets_created", "created_at_ms", "id"),
    sa.Index("ix_tickets_status_created", "status", "created_at_ms", "id"),
    sa.Index("ix_tickets_assignee_created", "assignee_agent_id", "created_at_ms", "id"),
    sa.Index(
        "ix_tickets_open_by_submitter",
        "organization_id",
        "submitter_email",
        "is_open",
        "created_at_ms",
        "id",
    ),
)

organization_counters = sa.Table(
    "organization_counters",
    metadata,
    sa.Column(
        "organization_id",
        sa.Integer,
        sa.ForeignKey("organizations.id"),
        primary_key=True,
    ),
    sa.Column("open_tickets", sa.Integer, nullable=False),
)

# Open tickets per organization and day of creation (migration 0007), so that a
# deep page of openTickets starts at its day instead of skipping every newer ticket.
# ``day`` is ``created_at_ms // 86_400_000`` (a UTC day); a day whose tickets have
# all been closed keeps its row, at 0.
open_ticket_days = sa.Table(
    "open_ticket_days",
    metadata,
    sa.Column(
        "organization_id",
        sa.Integer,
        sa.ForeignKey("organizations.id"),
        primary_key=True,
    ),
    sa.Column("day", sa.BigInteger, primary_key=True),
    sa.Column("open_tickets", sa.Integer, nullable=False),
)

rma_requests = sa.Table(
    "rma_requests",
    metadata,
    sa.Column("ticket_id", sa.Integer, sa.ForeignKey("tickets.id"), primary_key=True),
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

attachments = sa.Table(
    "attachments",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("ticket_id", sa.Integer, sa.ForeignKey("tickets.id"), nullable=False),
    sa.Column("file_name", sa.String(255), nullable=False),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("content_type", sa.String(100), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    sa.Index("ix_attachments_ticket_id", "ticket_id"),
    sa.Index("ix_attachments_sha256", "sha256"),
)

feedback = sa.Table(
    "feedback",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "organization_id", sa.Integer, sa.ForeignKey("organizations.id"), nullable=False
    ),
    sa.Column("api_key_id", sa.Integer, sa.ForeignKey("api_keys.id"), nullable=False),
    sa.Column("user_email", sa.String(254), nullable=False),
    sa.Column("feedback", sa.Text, nullable=False),
    sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    sa.Index("ix_feedback_organization_created", "organization_id", "created_at_ms"),
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
    # 1 until the outbox's dispatcher has turned the event into its messages;
    # NULL after, and for events older than the outbox (migration 0005).
    sa.Column("outbox_pending", sa.SmallInteger, nullable=True),
    sa.Index("ix_ticket_events_ticket_id", "ticket_id"),
    sa.Index(
        "ix_ticket_events_outbox_pending",
        "id",
        sqlite_where=sa.text("outbox_pending IS NOT NULL"),
        postgresql_where=sa.text("outbox_pending IS NOT NULL"),
    ),
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
    # Null for an operation that makes no ticket (feedback).
    sa.Column("ticket_id", sa.Integer, sa.ForeignKey("tickets.id"), nullable=True),
    sa.Column("warning_msg", sa.Text, nullable=True),
    sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    sa.Index("ix_idempotency_keys_created", "created_at_ms"),
)

# Used on PostgreSQL only, where it is UNLOGGED: one row per organization.
rate_limit_buckets = sa.Table(
    "rate_limit_buckets",
    metadata,
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

# The agent console (migration 0004). Full-text search over tickets lives beside
# these, outside SQLAlchemy's view: an FTS5 table on SQLite, a GIN index on
# PostgreSQL (see the migration). On SQLite the API's writer indexes the tickets it
# creates (migration 0008); whatever writes tickets another way rebuilds the index.
REBUILD_SEARCH = "INSERT INTO tickets_search (tickets_search) VALUES ('rebuild')"
agents = sa.Table(
    "agents",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("email", sa.String(254), nullable=False, unique=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("password_hash", sa.String(200), nullable=False),
    sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    sa.Column("disabled_at_ms", sa.BigInteger, nullable=True),
)

console_sessions = sa.Table(
    "console_sessions",
    metadata,
    # SHA-256 of the cookie's token: the token itself is never stored.
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("agent_id", sa.Integer, sa.ForeignKey("agents.id"), nullable=False),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    sa.Column("last_seen_at_ms", sa.BigInteger, nullable=False),
    sa.Column("expires_at_ms", sa.BigInteger, nullable=False),
    sa.Index("ix_console_sessions_agent_id", "agent_id"),
)

login_failures = sa.Table(
    "login_failures",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    # "email:<address>" or "address:<client address>".
    sa.Column("subject", sa.String(300), nullable=False),
    sa.Column("failed_at_ms", sa.BigInteger, nullable=False),
    sa.Index("ix_login_failures_subject", "subject", "failed_at_ms"),
)

ticket_messages = sa.Table(
    "ticket_messages",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("ticket_id", sa.Integer, sa.ForeignKey("tickets.id"), nullable=False),
    sa.Column("agent_id", sa.Integer, sa.ForeignKey("agents.id"), nullable=False),
    # "reply" (public, mailed to the requester) or "note" (internal only).
    sa.Column("kind", sa.String(10), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    sa.Index("ix_ticket_messages_ticket_id", "ticket_id"),
)

ticket_status_counts = sa.Table(
    "ticket_status_counts",
    metadata,
    sa.Column(
        "organization_id",
        sa.Integer,
        sa.ForeignKey("organizations.id"),
        primary_key=True,
    ),
    sa.Column("status", sa.String(20), primary_key=True),
    sa.Column("tickets", sa.Integer, nullable=False),
)

# The notification outbox (migration 0005).
webhooks = sa.Table(
    "webhooks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "organization_id", sa.Integer, sa.ForeignKey("organizations.id"), nullable=False
    ),
    sa.Column("url", sa.String(2000), nullable=False),
    # "whsec_" and the base64 key, shown once by ``helpline webhooks add``.
    sa.Column("secret", sa.String(100), nullable=False),
    # After ``helpline webhooks rotate-secret``: the secret it replaced, which
    # still signs deliveries beside the new one until the time after it.
    sa.Column("previous_secret", sa.String(100), nullable=True),
    sa.Column("previous_secret_until_ms", sa.BigInteger, nullable=True),
    # The event types it wants, or NULL for every one.
    sa.Column("events", sa.JSON, nullable=True),
    sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    sa.Index("ix_webhooks_organization_id", "organization_id"),
)

outbox_messages = sa.Table(
    "outbox_messages",
    metadata,
    # Also the message's stable id: the webhook-id, and part of the Message-ID.
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "event_id", sa.Integer, sa.ForeignKey("ticket_events.id"), nullable=False
    ),
    sa.Column("ticket_id", sa.Integer, sa.ForeignKey("tickets.id"), nullable=False),
    # "email" or "webhook".
    sa.Column("channel", sa.String(10), nullable=False),
    # A webhook event ("ticket.created", ...) or a mail kind ("created", ...).
    sa.Column("event_type", sa.String(40), nullable=False),
    # No foreign key: a removed webhook leaves its history behind.
    sa.Column("webhook_id", sa.Integer, nullable=True),
    # The mail's recipient or the webhook's URL.
    sa.Column("destination", sa.String(2000), nullable=False),
    # JSON: the webhook's exact body, or the fields a mail is composed from.
    sa.Column("payload", sa.Text, nullable=False),
    # "pending", "sent" or "dead".
    sa.Column("state", sa.String(10), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at_ms", sa.BigInteger, nullable=False),
    # Set while a dispatcher delivers it; another may take it once this passes.
    sa.Column("lease_until_ms", sa.BigInteger, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    sa.Column("sent_at_ms", sa.BigInteger, nullable=True),
    # By channel: mails that wait for SMTP to be configured are never in the way.
    sa.Index(
        "ix_outbox_messages_due",
        "channel",
        "next_attempt_at_ms",
        sqlite_where=sa.text("state = 'pending'"),
        postgresql_where=sa.text("state = 'pending'"),
    ),
    sa.Index("ix_outbox_messages_state", "state", "id"),
    sa.Index("ix_outbox_messages_ticket_id", "ticket_id"),
)

# SQLite: the one dispatcher allowed to work at a time holds the "dispatcher" row.
outbox_leases = sa.Table(
    "outbox_leases",
    metadata,
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("holder", sa.String(100), nullable=False),
    sa.Column("expires_at_ms", sa.BigInteger, nullable=False),
)
