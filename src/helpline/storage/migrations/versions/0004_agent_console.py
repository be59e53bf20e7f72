"""The agent console: agents, their sessions, replies and notes, assignment,
per-status counts and full-text search.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# SQLite: an FTS5 index over the tickets' own subject and body, kept by triggers.
_SQLITE_SEARCH = [
    """CREATE VIRTUAL TABLE tickets_search USING fts5(
        subject, body, content='tickets', content_rowid='id',
        tokenize='unicode61 remove_diacritics 2'
    )""",
    """CREATE TRIGGER tickets_search_insert AFTER INSERT ON tickets BEGIN
        INSERT INTO tickets_search (rowid, subject, body)
        VALUES (new.id, new.subject, new.body);
    END""",
    """CREATE TRIGGER tickets_search_update AFTER UPDATE OF subject, body ON tickets
    BEGIN
        INSERT INTO tickets_search (tickets_search, rowid, subject, body)
        VALUES ('delete', old.id, old.subject, old.body);
        INSERT INTO tickets_search (rowid, subject, body)
        VALUES (new.id, new.subject, new.body);
    END""",
    """CREATE TRIGGER tickets_search_delete AFTER DELETE ON tickets BEGIN
        INSERT INTO tickets_search (tickets_search, rowid, subject, body)
        VALUES ('delete', old.id, old.subject, old.body);
    END""",
    "INSERT INTO tickets_search (tickets_search) VALUES ('rebuild')",
]
# PostgreSQL: a GIN index over the same text, which the console's query repeats.
_POSTGRES_SEARCH = [
    """CREATE INDEX ix_tickets_search ON tickets USING gin (
        to_tsvector('simple', coalesce(subject, '') || ' ' || coalesce(body, ''))
    )""",
]


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("email", sa.String(254), nullable=False, unique=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
        sa.Column("disabled_at_ms", sa.BigInteger, nullable=True),
    )
    op.create_table(
        "console_sessions",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("agent_id", sa.Integer, sa.ForeignKey("agents.id"), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
        sa.Column("last_seen_at_ms", sa.BigInteger, nullable=False),
        sa.Column("expires_at_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_console_sessions_agent_id", "console_sessions", ["agent_id"])
    op.create_table(
        "login_failures",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("failed_at_ms", sa.BigInteger, nullable=False),
    )
    op.create_index(
        "ix_login_failures_subject", "login_failures", ["subject", "failed_at_ms"]
    )
    op.create_table(
        "ticket_messages",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("ticket_id", sa.Integer, sa.ForeignKey("tickets.id"), nullable=False),
        sa.Column("agent_id", sa.Integer, sa.ForeignKey("agents.id"), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_ticket_messages_ticket_id", "ticket_messages", ["ticket_id"])
    op.create_table(
        "ticket_status_counts",
        sa.Column(
            "organization_id",
            sa.Integer,
            sa.ForeignKey("organizations.id"),
            primary_key=True,
        ),
        sa.Column("status", sa.String(20), primary_key=True),
        sa.Column("tickets", sa.Integer, nullable=False),
    )
    op.execute(
        "INSERT INTO ticket_status_counts (organization_id, status, tickets) "
        "SELECT organization_id, status, count(*) FROM tickets "
        "GROUP BY organization_id, status"
    )
    if _dialect() == "sqlite":
        # A plain ADD COLUMN, which SQLite takes with an inline REFERENCES:
        # rebuilding tickets would trip its children's foreign keys.
        op.execute(
            "ALTER TABLE tickets ADD COLUMN assignee_agent_id INTEGER "
            "REFERENCES agents (id)"
        )
    else:
        op.add_column(
            "tickets",
            sa.Column(
                "assignee_agent_id",
                sa.Integer,
                sa.ForeignKey("agents.id"),
                nullable=True,
            ),
        )
    op.create_index("ix_tickets_created", "tickets", ["created_at_ms", "id"])
    op.create_index(
        "ix_tickets_status_created", "tickets", ["status", "created_at_ms", "id"]
    )
    op.create_index(
        "ix_tickets_assignee_created",
        "tickets",
        ["assignee_agent_id", "created_at_ms", "id"],
    )
    search = _SQLITE_SEARCH if _dialect() == "sqlite" else _POSTGRES_SEARCH
    for statement in search:
        op.execute(statement)


def downgrade() -> None:
    if _dialect() == "sqlite":
        for name in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER tickets_search_{name}")
        op.execute("DROP TABLE tickets_search")
    else:
        op.drop_index("ix_tickets_search", "tickets")
    op.drop_index("ix_tickets_assignee_created", "tickets")
    op.drop_index("ix_tickets_status_created", "tickets")
    op.drop_index("ix_tickets_created", "tickets")
    with op.batch_alter_table("tickets") as tickets:
        tickets.drop_column("assignee_agent_id")
    for table in (
        "ticket_status_counts",
        "ticket_messages",
        "login_failures",
        "console_sessions",
        "agents",
    ):
        op.drop_table(table)


def _dialect() -> str:
    return str(op.get_bind().dialect.name)
