"""Versioned schema migrations (Alembic), applied at start and by ``db upgrade``."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from helpline.storage.engine import hold_schema_lock

_MIGRATIONS = Path(__file__).with_name("migrations")


def _config(connection: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None, "the migrations folder has no revision"  # noqa: S101
    return head


def current_revision(engine: sa.Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: sa.Engine, *, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (the newest by default); a no-op when it is
    already there.

    Nodes starting at once migrate one after another: the first does the work
    and the others find the schema current.
    """
    with engine.begin() as connection:
        hold_schema_lock(connection)
        command.upgrade(_config(connection), revision)
