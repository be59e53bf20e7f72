"""Full-text index merges sized for a large table (SQLite only).

FTS5 writes every ticket's words as a small segment of their own, and by default
starts merging a level of segments once it holds 4. On a database of a million
tickets that merging was nine tenths of what committing a ticket cost: 64-ticket
transactions reached 2,300-3,600 tickets/s there against 11,700 on an empty
database (2-core development machine). Merging a level at 16 segments, with the
one-shot "crisis" merge moved from 16 to 64 segments so that it stays rare and
merges stay incremental, brought the million-ticket database to 10,000-11,300/s
and left the empty one as it was. The price: a search may read up to 15
segments a level instead of 3, a few more index lookups per word searched.

PostgreSQL's search index (a GIN index over the tickets) has no such setting.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# FTS5's settings are rows of the index's own config table, kept in the file.
_SET = "INSERT INTO tickets_search (tickets_search, rank) VALUES ('{name}', {value})"
SEARCH_MERGES = {"automerge": 16, "crisismerge": 64}
FTS5_DEFAULTS = {"automerge": 4, "crisismerge": 16}


def upgrade() -> None:
    _configure(SEARCH_MERGES)


def downgrade() -> None:
    _configure(FTS5_DEFAULTS)


def _configure(settings: dict[str, int]) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for name, value in settings.items():
        op.execute(_SET.format(name=name, value=value))
