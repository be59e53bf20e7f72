"""``helpline db``: schema migrations, copies between databases, SQLite backups."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path

import click

from helpline.cli.common import database_option, migrated
from helpline.config import ConfigError, load_settings
from helpline.domain.clock import now_ms
from helpline.storage.backup import BackupError, BackupReport, backup_sqlite
from helpline.storage.blobs import blob_root_for
from helpline.storage.copy import (
    CountsDiffer,
    TableCount,
    TargetNotEmpty,
    copy_database,
    printable_url,
)
from helpline.storage.engine import is_postgres, make_engine, sqlite_file
from helpline.storage.errors import StorageUnavailable
from helpline.storage.migrate import current_revision, head_revision


@click.group()
def db() -> None:
    """Manage the database: schema, copies, backups."""


@db.command("upgrade")
@database_option
def upgrade_command(database_url: str) -> None:
    """Apply every pending migration (serve does this at start too)."""
    migrated(database_url)
    click.echo(f"database is at revision {head_revision()}", err=True)


@db.command("current")
@database_option
def current_command(database_url: str) -> None:
    """Print the database's schema revision (none when never migrated)."""
    engine = make_engine(database_url)
    try:
        click.echo(current_revision(engine) or "none")
    finally:
        engine.dispose()


@db.command("copy")
@click.option(
    "--from",
    "source_url",
    required=True,
    metavar="URL",
    help="The database to copy from; it is only read.",
)
@click.option(
    "--to",
    "target_url",
    required=True,
    metavar="URL",
    help="The database to copy into; it must hold no organization.",
)
def copy_command(source_url: str, target_url: str) -> None:
    """Copy everything into an empty database, keeping every id.

    Moves organizations, API keys, tickets with their RMA details, attachment
    records and history, feedback, open-ticket counters and live idempotency
    claims. Both databases are migrated first; the target is written in one
    transaction, so a failed copy leaves it empty. Prints each table's row count
    in both on stderr, and where the attachment files must go: they are not in
    the database, and the command does not move them.
    """
    if _same_database(source_url, target_url):
        raise click.UsageError("--from and --to name the same database")
    files_hint = _files_hint(source_url, target_url)
    migrated(source_url)
    migrated(target_url)

    try:
        counts = copy_database(source_url, target_url, now_ms=now_ms())
    except CountsDiffer as problem:
        _print_counts(problem.counts)
        raise click.ClickException(
            f"{problem}; nothing was kept in {printable_url(target_url)}"
        ) from None
    except TargetNotEmpty as problem:
        raise click.ClickException(str(problem)) from None
    except StorageUnavailable as problem:
        raise click.ClickException(
            f"the copy failed and nothing was kept in {printable_url(target_url)}: "
            f"{problem}"
        ) from None

    _print_counts(counts)
    click.echo(files_hint, err=True)


@db.command("backup")
@click.argument("output", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace OUTPUT if it exists.")
@database_option
def backup_command(output: Path, force: bool, database_url: str) -> None:
    """Back an SQLite database up to OUTPUT, even while a server writes to it.

    The copy is checked with PRAGMA integrity_check before it takes OUTPUT's
    name. Prints its path, size and ticket count on stderr. For PostgreSQL, use
    pg_dump.
    """
    database = _sqlite_database(database_url)
    try:
        report = backup_sqlite(database, output, overwrite=force)
    except BackupError as problem:
        raise click.ClickException(str(problem)) from None
    click.echo(_backup_summary(report), err=True)


def _same_database(first_url: str, second_url: str) -> bool:
    try:
        first_file, second_file = sqlite_file(first_url), sqlite_file(second_url)
        if first_file is not None and second_file is not None:
            return first_file.resolve() == second_file.resolve()
        return printable_url(first_url) == printable_url(second_url)
    except ValueError as problem:
        raise click.UsageError(str(problem)) from None


def _files_hint(source_url: str, target_url: str) -> str:
    """The line telling the operator which files directory to copy where."""
    try:
        blob_dir = load_settings().blob_dir
    except ConfigError as problem:
        raise click.UsageError(str(problem)) from None
    source = _files_directory(source_url, blob_dir, otherwise="the source's")
    target = _files_directory(target_url, blob_dir, otherwise="the target's")
    if source == target:
        return (
            f"Attachment files are not in the database: they stay in {source}; "
            f"serve the target with HELPLINE_BLOB_DIR={source}"
        )
    return (
        "Attachment files are not in the database and were not copied: "
        f"copy {source} to {target}"
    )


def _files_directory(database_url: str, blob_dir: str | None, *, otherwise: str) -> str:
    try:
        return str(blob_root_for(database_url, blob_dir))
    except ValueError:
        # PostgreSQL without HELPLINE_BLOB_DIR set here, or an in-memory database.
        return f"{otherwise} HELPLINE_BLOB_DIR"


def _print_counts(counts: Sequence[TableCount]) -> None:
    """``tickets  1234 → 1234``, one line per table, aligned."""
    name_width = max(len(count.table) for count in counts)
    number_width = max(len(str(max(count.source, count.target))) for count in counts)
    for count in counts:
        line = (
            f"{count.table.ljust(name_width)}  {count.source:>{number_width}} → "
            f"{count.target:>{number_width}}"
        )
        click.echo(line if count.matches else f"{line}  DIFFERS", err=True)


def _sqlite_database(database_url: str) -> Path:
    """The file of an SQLite URL; a usage error for anything else."""
    try:
        postgres = is_postgres(database_url)
    except ValueError as problem:
        raise click.UsageError(str(problem)) from None
    if postgres:
        url = shlex.quote(printable_url(database_url))
        raise click.UsageError(
            "db backup copies SQLite databases; back PostgreSQL up with pg_dump: "
            f"pg_dump --format=custom --file=helpline.dump {url}"
        )
    database = sqlite_file(database_url)
    if database is None:
        raise click.UsageError("db backup needs an SQLite file, not a memory database")
    return database


def _backup_summary(report: BackupReport) -> str:
    mebibytes = report.size_bytes / (1024 * 1024)
    return (
        f"{report.path}: {report.size_bytes} bytes ({mebibytes:.1f} MiB), "
        f"{report.ticket_count} tickets, integrity ok"
    )
