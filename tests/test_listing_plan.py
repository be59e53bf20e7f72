"""The open-ticket listings read an index, never every ticket of an organization."""

from __future__ import annotations

import re
import sqlite3

import psycopg
import pytest

from helpline.storage import listing, postgres
from helpline.storage.engine import postgres_dsn, sqlite_file

LISTINGS = ["page", "page-from-day", "window", "window-of-submitter"]
SQLITE_LISTINGS = {
    "page": (listing.OPEN_PAGE_SQL, (1, 101, 900), "ix_tickets_open_by_organization"),
    "page-from-day": (
        listing.OPEN_PAGE_FROM_SQL,
        (1, 10, 101, 900),
        "ix_tickets_open_by_organization",
    ),
    "page-up-from-day": (
        listing.OPEN_PAGE_UP_FROM_SQL,
        (1, 10, 101, 900),
        "ix_tickets_open_by_organization",
    ),
    "window": (
        listing.OPEN_WINDOW_SQL,
        (1, 0, 10, 1001),
        "ix_tickets_open_by_organization",
    ),
    "window-of-submitter": (
        listing.OPEN_WINDOW_OF_SUBMITTER_SQL,
        (1, "a@b.co", 0, 10, 1001),
        "ix_tickets_open_by_submitter",
    ),
}
POSTGRES_LISTINGS = {
    "page": (postgres.OPEN_PAGE_SQL, "1, 101, 900", "ix_tickets_open_by_organization"),
    "page-from-day": (
        postgres.OPEN_PAGE_FROM_SQL,
        "1, 10, 101, 900",
        "ix_tickets_open_by_organization",
    ),
    "window": (
        postgres.OPEN_WINDOW_SQL,
        "1, 0, 10, 1001",
        "ix_tickets_open_by_organization",
    ),
    "window-of-submitter": (
        postgres.OPEN_WINDOW_OF_SUBMITTER_SQL,
        "1, 0, 10, 1001, 'a@b.co'",
        "ix_tickets_open_by_submitter",
    ),
}


def sqlite_plan(database_url: str, sql: str, parameters: tuple[object, ...]) -> str:
    path = sqlite_file(database_url)
    assert path is not None
    with sqlite3.connect(path) as connection:
        rows = connection.execute(f"EXPLAIN QUERY PLAN {sql}", parameters).fetchall()
    return "\n".join(row[-1] for row in rows)


def postgres_plan(database_url: str, sql: str, arguments: str) -> str:
    """The plan PostgreSQL picks when a scan of the whole table is its last resort,
    as it is for a large table; an empty test table would always be scanned."""
    with psycopg.connect(postgres_dsn(database_url), autocommit=True) as connection:
        connection.execute("SET enable_seqscan = off")
        connection.execute(f"PREPARE listing AS {sql}")
        rows = connection.execute(f"EXPLAIN EXECUTE listing ({arguments})").fetchall()
    return "\n".join(row[0] for row in rows)


@pytest.mark.backends("sqlite")
@pytest.mark.parametrize("name", SQLITE_LISTINGS)
def test_sqlite_listing_searches_its_index_in_order_without_sorting(
    database_url: str, name: str
) -> None:
    sql, parameters, index = SQLITE_LISTINGS[name]

    explained = sqlite_plan(database_url, sql, parameters)

    assert f"SEARCH tickets USING INDEX {index}" in explained
    assert "SCAN" not in explained
    assert "TEMP B-TREE" not in explained


@pytest.mark.backends("postgresql")
@pytest.mark.parametrize("name", LISTINGS)
def test_postgres_listing_walks_its_index_backward_without_sorting(
    database_url: str, name: str
) -> None:
    sql, arguments, index = POSTGRES_LISTINGS[name]

    explained = postgres_plan(database_url, sql, arguments)

    # On an empty table the planner may as well walk ix_tickets_created for a
    # window (it is as cheap there); what must hold is an index in order.
    used = re.search(r"Index Scan Backward using (\w+) on tickets", explained)
    assert used is not None, explained
    assert used.group(1) in {index, "ix_tickets_created"}
    assert "Sort" not in explained
    assert "Seq Scan" not in explained


@pytest.mark.backends("sqlite")
def test_sqlite_total_is_read_from_the_counter_row(database_url: str) -> None:
    explained = sqlite_plan(database_url, listing.OPEN_COUNT_SQL, (1,))

    assert "SEARCH organization_counters USING INTEGER PRIMARY KEY" in explained


@pytest.mark.backends("postgresql")
def test_postgres_total_is_read_from_the_counter_row(database_url: str) -> None:
    explained = postgres_plan(database_url, postgres.OPEN_COUNT_SQL, "1")

    assert "Index Scan using organization_counters_pkey" in explained


@pytest.mark.backends("sqlite")
def test_sqlite_deep_page_reads_only_the_organizations_days_in_order(
    database_url: str,
) -> None:
    explained = sqlite_plan(database_url, listing.OPEN_DAYS_SQL, (1,))

    assert "SEARCH open_ticket_days USING INDEX" in explained
    assert "(organization_id=?)" in explained
    assert "SCAN" not in explained
    assert "TEMP B-TREE" not in explained


@pytest.mark.backends("postgresql")
def test_postgres_deep_page_reads_only_the_organizations_days(
    database_url: str,
) -> None:
    explained = postgres_plan(database_url, postgres.OPEN_DAY_SQL, "1, 5000")

    # One row per day: sorting an organization's few hundred days is cheap, so
    # what must hold is that only its rows are read, through the key.
    assert "open_ticket_days_pkey" in explained
    assert "Seq Scan" not in explained
