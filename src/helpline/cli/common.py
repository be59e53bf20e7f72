"""What the commands share: the database option, opening storage, printing."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click
import sqlalchemy as sa

from helpline.domain.clock import iso_utc
from helpline.storage.admin import AdminStore
from helpline.storage.engine import DEFAULT_DATABASE_URL, make_engine
from helpline.storage.errors import StorageError
from helpline.storage.migrate import upgrade

F = TypeVar("F", bound=Callable[..., Any])


def database_option(command: F) -> F:
    option = click.option(
        "--database",
        "database_url",
        envvar="HELPLINE_DATABASE_URL",
        default=DEFAULT_DATABASE_URL,
        show_default=True,
        help="Database URL (also HELPLINE_DATABASE_URL).",
    )
    return option(command)


def iso(ms: int | None) -> str:
    return "-" if ms is None else iso_utc(ms)


def migrated(database_url: str) -> None:
    """Apply pending migrations; exits with a clear message when the URL is unusable."""
    try:
        # The write lock held from BEGIN makes concurrent starts migrate one by one.
        engine = make_engine(database_url, immediate=True)
    except ValueError as problem:
        raise click.UsageError(str(problem)) from None
    try:
        upgrade(engine)
    except sa.exc.OperationalError as problem:
        message = f"cannot reach the database: {problem.orig}".strip()
        raise click.ClickException(message) from None
    finally:
        engine.dispose()


StoreT = TypeVar("StoreT", bound=AdminStore)


@contextmanager
def admin_store(database_url: str) -> Iterator[AdminStore]:
    """The migrated database, with storage failures turned into command errors."""
    with opened(database_url, AdminStore) as store:
        yield store


@contextmanager
def opened(database_url: str, kind: type[StoreT]) -> Iterator[StoreT]:
    """A store of ``kind`` on the migrated database, with storage failures turned
    into command errors."""
    migrated(database_url)
    store = kind(database_url)
    try:
        yield store
    except StorageError as problem:
        raise click.ClickException(str(problem)) from None
    finally:
        store.close()


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [
        max([len(header), *(len(row[index]) for row in rows)])
        for index, header in enumerate(headers)
    ]
    for line in [headers, *rows]:
        cells = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        click.echo("  ".join(cells).rstrip())
