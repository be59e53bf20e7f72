"""Storage: migrations, the group-commit writer, and failures that must answer 503."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from helpline.storage.engine import make_engine, sqlite_file
from helpline.storage.errors import Overloaded, StorageUnavailable
from helpline.storage.migrate import current_revision, head_revision, upgrade
from helpline.storage.schema import metadata
from helpline.storage.writer import GroupCommitWriter

from .conftest import VALID_REQUEST, Credentials, StartServer


def test_migrations_build_exactly_the_declared_schema(database_url: str) -> None:
    engine = make_engine(database_url)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    assert current_revision(engine) == head_revision()
    engine.dispose()

    assert differences == []


def test_upgrade_twice_is_a_no_op(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)

    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_concurrent_first_starts_bootstrap_one_organization(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'race.db'}"
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


def _writer_file(database_url: str) -> Path:
    path = sqlite_file(database_url)
    assert path is not None
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, v)")
    return path


def _stored_notes(path: Path) -> list[object]:
    with sqlite3.connect(path) as connection:
        return [row[0] for row in connection.execute("SELECT v FROM notes")]


Job = Callable[[sqlite3.Connection], int]


def _insert(value: object) -> Job:
    def job(connection: sqlite3.Connection) -> int:
        cursor = connection.execute("INSERT INTO notes (v) VALUES (?)", (value,))
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    return job


def test_writer_commits_many_jobs_and_isolates_a_failing_one(
    database_url: str,
) -> None:
    path = _writer_file(database_url)
    writer = GroupCommitWriter(path)

    def failing(connection: sqlite3.Connection) -> int:
        connection.execute("INSERT INTO notes (v) VALUES ('doomed')")
        raise RuntimeError("this job fails after writing")

    async def submit_all() -> list[object]:
        writer.start()
        jobs: list[Job] = [_insert(n) for n in range(50)]
        jobs.insert(25, failing)
        outcomes = await asyncio.gather(
            *(writer.submit(job) for job in jobs), return_exceptions=True
        )
        await writer.stop()
        return outcomes

    outcomes = asyncio.run(submit_all())

    assert isinstance(outcomes[25], StorageUnavailable)
    ids = [outcome for index, outcome in enumerate(outcomes) if index != 25]
    assert len(set(ids)) == 50
    stored = _stored_notes(path)
    assert "doomed" not in stored
    assert len(stored) == 50


def test_writer_shares_commits_between_concurrent_jobs(database_url: str) -> None:
    path = _writer_file(database_url)
    writer = GroupCommitWriter(path)
    statements: list[str] = []

    async def submit_all() -> list[int]:
        writer.start()
        first = writer.submit(lambda connection: _trace(connection, statements))
        ids = await asyncio.gather(
            first, *(writer.submit(_insert(n)) for n in range(199))
        )
        await writer.stop()
        return ids

    ids = asyncio.run(submit_all())

    assert len(set(ids)) == 200
    assert len(_stored_notes(path)) == 200
    assert statements.count("COMMIT") <= 2


def _trace(connection: sqlite3.Connection, statements: list[str]) -> int:
    connection.set_trace_callback(statements.append)
    return _insert("first")(connection)


def test_writer_refuses_work_past_its_queue_bound(database_url: str) -> None:
    path = _writer_file(database_url)
    writer = GroupCommitWriter(path, max_pending=3)

    async def submit_all() -> list[object]:
        writer.start()
        outcomes = await asyncio.gather(
            *(writer.submit(_insert(n)) for n in range(5)), return_exceptions=True
        )
        await writer.stop()
        return outcomes

    outcomes = asyncio.run(submit_all())

    assert [type(outcome) for outcome in outcomes[3:]] == [Overloaded, Overloaded]
    assert len(_stored_notes(path)) == 3


def test_writer_runs_bookkeeping_while_busy_when_idle_and_at_stop(
    database_url: str,
) -> None:
    path = _writer_file(database_url)
    runs: list[str] = []
    phase = ["busy"]
    writer = GroupCommitWriter(
        path, idle_seconds=0.05, on_idle=lambda _: runs.append(phase[0])
    )

    async def exercise() -> None:
        writer.start()
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            await writer.submit(_insert(0))
        phase[0] = "idle"
        await asyncio.sleep(0.2)
        phase[0] = "stop"
        await writer.stop()

    asyncio.run(exercise())

    assert runs.count("busy") >= 2
    assert runs.count("idle") == 1
    assert runs[-1] == "stop"


def test_writer_refuses_work_when_stopped(database_url: str) -> None:
    writer = GroupCommitWriter(_writer_file(database_url))

    with pytest.raises(StorageUnavailable):
        asyncio.run(writer.submit(_insert(1)))


def test_database_failure_answers_503_and_never_500(
    start_server: StartServer, credentials: Credentials, database_url: str
) -> None:
    server = start_server()
    engine = make_engine(database_url, immediate=True)
    with engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE idempotency_keys"))
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


def test_revoked_key_stops_working_at_once(
    start_server: StartServer, credentials: Credentials, database_url: str
) -> None:
    server = start_server()
    url = f"{server.url}/api/help/ticket"
    first = httpx.post(url, json=VALID_REQUEST, headers=credentials.headers())
    engine = make_engine(database_url, immediate=True)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE api_keys SET revoked_at_ms = 1"))
    engine.dispose()

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
