"""Copying a whole Helpline database to another one, on either backend.

The way out of the embedded default: every organization, API key, ticket (with
its RMA details, attachment records and history), feedback entry, open-ticket
counter and live idempotency claim moves with its primary key unchanged, so
ticket ids that integrators hold keep pointing at the same tickets.

The source is read inside one snapshot (a read transaction on SQLite, REPEATABLE
READ on PostgreSQL), so a server may keep writing to it; the rows copied are
those committed when the copy began. The target is written in one transaction,
under the lock that first starts take before creating an organization: a failure
anywhere leaves it as empty as it was, and a server starting on it meanwhile
waits instead of bootstrapping an organization whose id would collide.

Attachment files live in the blob directory, not in the database; moving them is
the operator's step (see ``helpline db copy``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from helpline.domain.idempotency import IDEMPOTENCY_WINDOW_MS
from helpline.storage.engine import hold_schema_lock, is_postgres, make_engine
from helpline.storage.errors import StorageError, StorageUnavailable
from helpline.storage.schema import (
    REBUILD_SEARCH,
    idempotency_keys,
    metadata,
    organizations,
    outbox_leases,
    rate_limit_buckets,
)

BATCH_ROWS = 1000
# Rebuilt from nothing by the servers; a copied bucket or lease would only be stale.
_TRANSIENT_TABLES = frozenset({rate_limit_buckets.name, outbox_leases.name})


class TargetNotEmpty(StorageError):
    """The target already holds organizations; nothing was written to it."""


class CountsDiffer(StorageError):
    """A table has a different number of rows in the target than in the source.

    The target's transaction was rolled back: it holds nothing from the copy.
    """

    def __init__(self, counts: Sequence[TableCount]) -> None:
        differing = ", ".join(count.table for count in counts if not count.matches)
        super().__init__(f"row counts differ in: {differing}")
        self.counts = tuple(counts)


@dataclass(frozen=True, slots=True)
class TableCount:
    """How many rows of one table the source offered and the target holds."""

    table: str
    source: int
    target: int

    @property
    def matches(self) -> bool:
        return self.source == self.target


def copied_tables() -> tuple[sa.Table, ...]:
    """Every table the copy moves, parents before the tables that refer to them.

    Taken from the schema rather than listed by hand, so a table added later is
    copied unless it is declared transient here.
    """
    return tuple(
        table for table in metadata.sorted_tables if table.name not in _TRANSIENT_TABLES
    )


def copy_database(
    source_url: str, target_url: str, *, now_ms: int, batch_rows: int = BATCH_ROWS
) -> tuple[TableCount, ...]:
    """Copy every row of ``copied_tables()`` from one migrated database to another.

    Idempotency claims older than the replay window are left behind; ``now_ms``
    fixes the window. Returns the per-table counts, which all match.

    Raises ``TargetNotEmpty`` when the target holds any organization,
    ``CountsDiffer`` when the verification fails, and ``StorageUnavailable`` when
    either database fails a statement; in each case the target keeps nothing.
    """
    claims_live_after = now_ms - IDEMPOTENCY_WINDOW_MS
    source_engine = make_engine(source_url)
    # On SQLite, BEGIN IMMEDIATE takes the write lock for the whole copy.
    target_engine = make_engine(target_url, immediate=True)
    try:
        with _snapshot(source_engine) as source, target_engine.begin() as target:
            hold_schema_lock(target)
            _refuse_unless_empty(target, name=printable_url(target_url))
            return _copy_and_verify(
                source,
                target,
                claims_live_after=claims_live_after,
                batch_rows=batch_rows,
            )
    except sa.exc.DBAPIError as error:
        raise StorageUnavailable(str(error.orig).strip()) from error
    finally:
        source_engine.dispose()
        target_engine.dispose()


@contextmanager
def _snapshot(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection that reads one consistent state of the database throughout."""
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            # Changes this connection in place, before its transaction begins.
            connection.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
        # SQLite in WAL mode: the transaction's first read fixes what it sees.
        with connection.begin():
            yield connection


def _refuse_unless_empty(target: sa.Connection, *, name: str) -> None:
    query = sa.select(sa.func.count()).select_from(organizations)
    existing = target.execute(query).scalar_one()
    if existing:
        raise TargetNotEmpty(
            f"{name} already holds {existing} organization(s); copy into a new, "
            "empty database"
        )


def _copy_and_verify(
    source: sa.Connection,
    target: sa.Connection,
    *,
    claims_live_after: int,
    batch_rows: int,
) -> tuple[TableCount, ...]:
    """Copy every table's rows inside the open transactions, then compare counts.

    Raises ``CountsDiffer``, which rolls the target's transaction back.
    """
    for table in copied_tables():
        rows = _rows_to_copy(table, claims_live_after=claims_live_after)
        _copy_rows(source, target, table, rows, batch_rows=batch_rows)

    if target.dialect.name == "postgresql":
        _advance_sequences(target)
    else:
        # SQLite indexes new tickets for search when the API's writer commits
        # them (migration 0008); rows copied in are indexed here, all at once.
        target.exec_driver_sql(REBUILD_SEARCH)

    counts = _count_rows(source, target, claims_live_after=claims_live_after)
    if not all(count.matches for count in counts):
        raise CountsDiffer(counts)
    return counts


def _rows_to_copy(table: sa.Table, *, claims_live_after: int) -> sa.Select[Any]:
    query = sa.select(table).order_by(*table.primary_key.columns)
    if table is idempotency_keys:
        query = query.where(idempotency_keys.c.created_at_ms > claims_live_after)
    return query


def _copy_rows(
    source: sa.Connection,
    target: sa.Connection,
    table: sa.Table,
    rows: sa.Select[Any],
    *,
    batch_rows: int,
) -> None:
    """Stream ``rows`` into ``table`` of the target, ``batch_rows`` at a time."""
    insert = _faithful_insert(table)
    # yield_per streams: a server-side cursor on PostgreSQL, a stepped cursor on
    # SQLite; only one batch is held in memory.
    result = source.execute(rows.execution_options(yield_per=batch_rows))
    for batch in result.mappings().partitions():
        target.execute(insert, [dict(row) for row in batch])


def _faithful_insert(table: sa.Table) -> sa.Insert:
    """An INSERT of every column that writes a JSON column's None as SQL NULL.

    ``sa.JSON`` would store None as the JSON text ``null``; Helpline writes SQL
    NULL for an absent list, and the copy keeps it that way.
    """
    values = {
        column.name: sa.bindparam(
            column.name,
            type_=(
                sa.JSON(none_as_null=True)
                if isinstance(column.type, sa.JSON)
                else column.type
            ),
        )
        for column in table.columns
    }
    return table.insert().values(values)


def _advance_sequences(target: sa.Connection) -> None:
    """Move each serial id's sequence past the largest copied id.

    Rows inserted with explicit ids leave PostgreSQL's sequences at their start;
    the next ticket would otherwise collide with ticket 1.
    """
    for table in copied_tables():
        if "id" not in table.c or not table.c.id.primary_key:
            continue
        sequence = sa.func.pg_get_serial_sequence(table.name, "id")
        next_id = sa.func.coalesce(sa.func.max(table.c.id), 0) + 1
        # is_called=false: nextval() returns next_id itself, 1 for an empty table.
        target.execute(sa.select(sa.func.setval(sequence, next_id, False)))


def _count_rows(
    source: sa.Connection, target: sa.Connection, *, claims_live_after: int
) -> tuple[TableCount, ...]:
    counts = []
    for table in copied_tables():
        offered = _rows_to_copy(table, claims_live_after=claims_live_after)
        counts.append(
            TableCount(
                table=table.name,
                source=_count(source, offered),
                target=_count(target, sa.select(table)),
            )
        )
    return tuple(counts)


def _count(connection: sa.Connection, rows: sa.Select[Any]) -> int:
    query = sa.select(sa.func.count()).select_from(rows.order_by(None).subquery())
    return int(connection.execute(query).scalar_one())


def printable_url(url: str) -> str:
    """The URL without its password (and driver), to name a database in a message.

    Raises ``ValueError`` for an unsupported URL.
    """
    parsed = sa.make_url(url)
    if is_postgres(url):
        parsed = parsed.set(drivername="postgresql")
    return parsed.render_as_string(hide_password=True)
