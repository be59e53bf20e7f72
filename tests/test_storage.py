"""Storage: migrations, the group-commit writer, and failures that must answer 503."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from helpline.storage.engine import make_engine
from helpline.storage.migrate import current_revision, head_revision, upgrade
from helpline.storage.schema import metadata

from .conftest import VALID_REQUEST, Credentials, PostgresDatabases, StartServer


def compared_by_alembic(
    item: object, name: str | None, kind: str, _reflected: bool, _compare_to: object
) -> bool:
    """Whether alembic should compare an object: not the full-text search, which
    the migration builds by hand (an FTS5 table, a GIN index on an expression)."""
    return not (name or "").startswith(("tickets_search", "ix_tickets_search"))


def test_migrations_build_exactly_the_declared_schema(database_url: str) -> None:
    engine = make_engine(database_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"include_object": compared_by_alembic}
        )
        differences = compare_metadata(context, metadata)
    assert current_revision(engine) == head_revision()
    engine.dispose()

    assert differences == []


def test_upgrade_twice_is_a_no_op(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)

    assert current_revision(engine) == head_revision()
    engine.dispose()


@pytest.mark.parametrize("engine_name", ["sqlite", "postgresql"])
def test_concurrent_first_starts_migrate_and_bootstrap_once(
    engine_name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if engine_name == "sqlite":
        url = f"sqlite:///{tmp_path / 'race.db'}"
    else:
        databases: PostgresDatabases = request.getfixturevalue("postgres")
        url = databases.url_of(databases.create_empty())
    script = (
        "from helpline.cli.common import migrated\n"
        "from helpline.cli.serve import _bootstrap\n"
        "from helpline.config import Settings\n"
        f"migrated({url!r})\n"
        f"_bootstrap(Settings(database_url={url!r}))\n"
    )
    starts = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
        for _ in range(4)
    ]
    outputs = [start.communicate(timeout=60)[0].decode() for start in starts]

    assert [start.returncode for start in starts] == [0, 0, 0, 0]
    assert sum("hlk_" in output for output in outputs) == 1
    engine = make_engine(url)
    with engine.connect() as connection:
        names = connection.execute(sa.text("SELECT name FROM organizations")).all()
    engine.dispose()
    assert names == [("default",)]


def test_database_failure_answers_503_and_never_500(
    start_server: StartServer, credentials: Credentials, database_url: str
) -> None:
    server = start_server()
    engine = make_engine(database_url, immediate=True)
    with engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE idempotency_keys"))
        connection.execute(sa.text("DROP TABLE outbox_messages"))
        connection.execute(sa.text("DROP TABLE ticket_events"))
    engine.dispose()

    response = httpx.post(
        f"{server.url}/api/help/ticket",
        json=VALID_REQUEST,
        headers=credentials.headers(),
    )

    assert response.status_code == 503
    assert response.json()["error"] is True
    assert "retry" in response.json()["errorMsg"]
    engine = make_engine(database_url)
    with engine.connect() as connection:
        count = connection.execute(sa.text("SELECT count(*) FROM tickets")).scalar()
    engine.dispose()
    assert count == 0


def revoke_every_key(database_url: str) -> None:
    engine = make_engine(database_url, immediate=True)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE api_keys SET revoked_at_ms = 1"))
    engine.dispose()


def test_revoked_key_stops_working_at_once_without_a_key_cache(
    start_server: StartServer, credentials: Credentials, database_url: str
) -> None:
    server = start_server(key_cache_seconds=0)
    url = f"{server.url}/api/help/ticket"
    first = httpx.post(url, json=VALID_REQUEST, headers=credentials.headers())
    revoke_every_key(database_url)

    after = httpx.post(url, json=VALID_REQUEST, headers=credentials.headers())

    assert first.status_code == 200
    assert after.status_code == 401


def test_revoked_key_stops_working_once_the_cached_copy_expires(
    start_server: StartServer, credentials: Credentials, database_url: str
) -> None:
    server = start_server(key_cache_seconds=0.5)
    url = f"{server.url}/api/help/ticket"
    first = httpx.post(url, json=VALID_REQUEST, headers=credentials.headers())
    revoke_every_key(database_url)
    time.sleep(0.6)

    after = httpx.post(url, json=VALID_REQUEST, headers=credentials.headers())

    assert first.status_code == 200
    assert after.status_code == 401


def test_readiness_answers_503_when_the_schema_is_gone(
    start_server: StartServer, database_url: str
) -> None:
    server = start_server()
    engine = make_engine(database_url, immediate=True)
    with engine.begin() as connection:
        connection.execute(sa.text("ALTER TABLE organizations RENAME TO moved"))
    engine.dispose()

    response = httpx.get(f"{server.url}/readyz")

    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"


def test_upgrade_from_0001_keeps_tickets_and_counts_the_open_ones(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url, immediate=True)
    upgrade(engine, revision="0001")
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO organizations (id, name, created_at_ms) "
                "VALUES (1, 'acme', 0);"
            )
        )
        connection.execute(
            sa.text(
                "INSERT INTO api_keys (id, organization_id, prefix, digest, "
                "user_email, permissions, created_at_ms) "
                "VALUES (1, 1, 'p', 'd', 'a@b.co', 'tickets:create', 0)"
            )
        )
        for ticket_id, status in [(1, "Open"), (2, "Solved"), (3, "Pending")]:
            connection.execute(
                sa.text(
                    "INSERT INTO tickets (id, organization_id, api_key_id, "
                    "submitter_email, kind, status, created_at_ms, updated_at_ms) "
                    "VALUES (:id, 1, 1, 'a@b.co', 'ticket', :status, 0, 0)"
                ),
                {"id": ticket_id, "status": status},
            )
            connection.execute(
                sa.text(
                    "INSERT INTO ticket_events (ticket_id, kind, actor, "
                    "created_at_ms) VALUES (:id, 'created', 'a@b.co', 0)"
                ),
                {"id": ticket_id},
            )

    upgrade(engine)

    with engine.connect() as connection:
        open_flags = connection.execute(
            sa.text("SELECT id, is_open FROM tickets ORDER BY id")
        ).all()
        counted = connection.execute(
            sa.text("SELECT open_tickets FROM organization_counters")
        ).scalar_one()
    engine.dispose()
    assert [(row[0], bool(row[1])) for row in open_flags] == [
        (1, True),
        (2, False),
        (3, True),
    ]
    assert counted == 2


@pytest.mark.backends("sqlite")
def test_sqlite_search_index_merges_sixteen_segments_a_level(
    database_url: str,
) -> None:
    engine = make_engine(database_url)
    with engine.connect() as connection:
        settings = dict(
            connection.execute(sa.text("SELECT k, v FROM tickets_search_config")).all()
        )
    engine.dispose()

    assert settings["automerge"] == 16
    assert settings["crisismerge"] == 64
