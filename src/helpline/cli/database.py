"""``helpline db``: schema migrations."""

from __future__ import annotations

import click

from helpline.cli.common import database_option, migrated
from helpline.storage.engine import make_engine
from helpline.storage.migrate import current_revision, head_revision


@click.group()
def db() -> None:
    """Manage the database schema."""


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
