"""The open-ticket listings read an index, never every ticket of an organization."""

from __future__ import annotations

import sqlite3

import pytest

from helpline.storage import listing
from helpline.storage.engine import sqlite_file


def plan(database_url: str, sql: str, parameters: tuple[object, ...]) -> str:
    path = sqlite_file(database_url)
    assert path is not None
    with sqlite3.connect(path) as connection:
        rows = connection.execute(f"EXPLAIN QUERY PLAN {sql}", parameters).fetchall()
    return "\n".join(row[-1] for row in rows)


@pytest.mark.parametrize(
    ("sql", "parameters", "index"),
    [
        (listing.OPEN_PAGE_SQL, (1, 101, 900), "ix_tickets_open_by_organization"),
        (
            listing.OPEN_WINDOW_SQL,
            (1, 0, 10, 1001),
            "ix_tickets_open_by_organization",
        ),
        (
            listing.OPEN_WINDOW_OF_SUBMITTER_SQL,
            (1, "a@b.co", 0, 10, 1001),
            "ix_tickets_open_by_submitter",
        ),
    ],
    ids=["page", "window", "window-of-submitter"],
)
def test_listing_searches_its_index_in_order_without_sorting(
    database_url: str, sql: str, parameters: tuple[object, ...], index: str
) -> None:
    explained = plan(database_url, sql, parameters)

    assert f"SEARCH tickets USING INDEX {index}" in explained
    assert "SCAN" not in explained
    assert "TEMP B-TREE" not in explained


def test_total_is_read_from_the_counter_row(database_url: str) -> None:
    explained = plan(database_url, listing.OPEN_COUNT_SQL, (1,))

    assert "SEARCH organization_counters USING INTEGER PRIMARY KEY" in explained
