"""Tickets enter the search index once per write transaction (SQLite only).

Until now a trigger indexed each new ticket as its row was inserted, on the event
loop's thread, where the search index was two thirds of a create's SQLite time
(67 us of a ticket's insert against 24 us without the trigger, in 64-ticket
transactions on the 2-core development machine). The API's writer now indexes a
batch's tickets with one statement, in the same transaction, on the thread that
commits it, while the event loop goes on serving. Every other writer of new
tickets rebuilds the index instead: ``helpline db copy`` into SQLite, and the
benchmark's seed. The update and delete triggers stay.

PostgreSQL's search index (a GIN index over the tickets) is kept by PostgreSQL.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_INSERT_TRIGGER = """CREATE TRIGGER tickets_search_insert AFTER INSERT ON tickets BEGIN
    INSERT INTO tickets_search (rowid, subject, body)
    VALUES (new.id, new.subject, new.body);
END"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER tickets_search_insert")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(_INSERT_TRIGGER)
