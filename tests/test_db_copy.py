"""``helpline db copy`` and ``helpline db backup`` on real databases.

The source of every copy is an SQLite file filled through the real API; the
target is a fresh PostgreSQL database (or, on the way back, a new SQLite file).
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from helpline.cli import cli
from helpline.cli.common import migrated
from helpline.domain.clock import now_ms
from helpline.domain.idempotency import IDEMPOTENCY_WINDOW_MS
from helpline.domain.tickets import TicketStatus
from helpline.outbox.plan import plan_messages
from helpline.outbox.webhooks import new_secret
from helpline.storage.admin import AdminStore
from helpline.storage.backup import backup_sqlite
from helpline.storage.console import ConsoleStore
from helpline.storage.copy import copied_tables, copy_database
from helpline.storage.engine import make_engine, sqlite_file
from helpline.storage.outbox import OutboxStore

from .conftest import (
    VALID_REQUEST,
    Credentials,
    LiveServer,
    MakeKey,
    PostgresDatabases,
    StartServer,
)
from .test_rma import VALID_RMA

IDEMPOTENCY_KEY = "copy-me-1"
FILE_CONTENT = b"camera log: offline since 09:12\n"


def run(*arguments: str) -> Result:
    return CliRunner().invoke(cli, list(arguments))


def copy(source_url: str, target_url: str) -> Result:
    return run("db", "copy", "--from", source_url, "--to", target_url)


# What the tests fill and compare


@dataclass
class Source:
    url: str
    credentials: Credentials
    ticket_ids: list[int]


def post_ticket(
    client: httpx.Client, credentials: Credentials, **headers: str
) -> dict[str, Any]:
    response = client.post(
        "/api/help/ticket", json=VALID_REQUEST, headers=credentials.headers(**headers)
    )
    body: dict[str, Any] = response.json()
    assert body["success"] is True, body
    return body


def post_ticket_with_file(
    client: httpx.Client, credentials: Credentials
) -> dict[str, Any]:
    parts = {
        "request": (None, json.dumps(VALID_REQUEST), "application/json"),
        "file": ("camera.log", FILE_CONTENT, "text/plain"),
    }
    response = client.post(
        "/api/help/ticketWithFile", files=parts, headers=credentials.headers()
    )
    body: dict[str, Any] = response.json()
    assert body["success"] is True, body
    return body


def post_feedback(client: httpx.Client, credentials: Credentials) -> None:
    response = client.post(
        "/api/help/feedback",
        json={"feedback": "Setup took five minutes."},
        headers=credentials.headers(),
    )
    assert response.json()["success"] is True


def post_rma(client: httpx.Client, credentials: Credentials) -> dict[str, Any]:
    response = client.post(
        "/api/help/rma", json=VALID_RMA, headers=credentials.headers()
    )
    body: dict[str, Any] = response.json()
    assert body["success"] is True, body
    return body


def table_rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every copied table's rows, sorted, as SQLAlchemy reads them."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return {
                table.name: sorted(
                    (tuple(row) for row in connection.execute(sa.select(table))),
                    key=repr,
                )
                for table in copied_tables()
            }
    finally:
        engine.dispose()


def null_json_counts(url: str) -> dict[str, int]:
    """How many SQL NULLs each JSON column holds (not JSON ``null`` texts)."""
    engine = make_engine(url)
    counts = {}
    try:
        with engine.connect() as connection:
            for table in copied_tables():
                for column in table.columns:
                    if isinstance(column.type, sa.JSON):
                        query = sa.select(sa.func.count()).where(column.is_(None))
                        counts[str(column)] = connection.execute(query).scalar_one()
    finally:
        engine.dispose()
    return counts


def show_ticket(url: str, ticket_id: int) -> dict[str, Any]:
    result = run("tickets", "show", str(ticket_id), "--json", "--database", url)
    assert result.exit_code == 0, result.output
    shown: dict[str, Any] = json.loads(result.stdout)
    return shown


def work_in_the_console(url: str, ticket_id: int) -> None:
    """An agent signs in, fails once, assigns the ticket to themself and replies."""
    console = ConsoleStore(url)
    try:
        agent = console.create_agent(
            email="ana@support.example",
            name="Ana",
            password_hash="$argon2id$not-a-real-hash",
            now_ms=now_ms(),
        )
        console.note_login_failure(["email:ana@support.example"], now_ms=now_ms())
        console.create_session(
            agent_id=agent.id, digest="0" * 64, csrf_token="c", now_ms=now_ms()
        )
        console.assign(ticket_id, agent.id, by=agent, now_ms=now_ms())
        console.add_message(
            ticket_id, kind="reply", body="On it.", by=agent, now_ms=now_ms()
        )
    finally:
        console.close()


@pytest.fixture
def empty_postgres(postgres: PostgresDatabases) -> Iterator[str]:
    """A new PostgreSQL database without any table."""
    name = postgres.create_empty()
    yield postgres.url_of(name)
    postgres.drop(name)


@pytest.fixture
def migrated_postgres(postgres: PostgresDatabases) -> Iterator[str]:
    """A new PostgreSQL database at the newest schema, without rows."""
    name = postgres.create()
    yield postgres.url_of(name)
    postgres.drop(name)


@pytest.fixture
def source(
    database_url: str,
    start_server: StartServer,
    credentials: Credentials,
    make_key: MakeKey,
    admin: AdminStore,
    monkeypatch: pytest.MonkeyPatch,
) -> Source:
    """An SQLite database with a row in every copied table, its server stopped."""
    monkeypatch.delenv("HELPLINE_BLOB_DIR", raising=False)
    other = make_key("globex", user_email="ops@globex.example")
    outbox = OutboxStore(database_url)
    outbox.add_webhook(
        "acme",
        url="https://hooks.acme.example/helpline",
        secret=new_secret(),
        events=None,
        now_ms=now_ms(),
    )
    server = start_server(dispatcher=False)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        first = post_ticket(client, credentials, **{"Idempotency-Key": IDEMPOTENCY_KEY})
        rma = post_rma(client, credentials)
        with_file = post_ticket_with_file(client, credentials)
        post_feedback(client, credentials)
        theirs = post_ticket(client, other)
    admin.set_status(
        first["ticketId"], TicketStatus.SOLVED, actor="operator", now_ms=now_ms()
    )
    work_in_the_console(database_url, first["ticketId"])
    # Stopped, so its bookkeeping (a key's last use) cannot change rows mid-test.
    server.stop()
    # The events become their messages, as a dispatcher would make them.
    try:
        while outbox.fan_out(plan_messages, limit=100, now_ms=now_ms()):
            pass
    finally:
        outbox.close()
    ids = [body["ticketId"] for body in (first, rma, with_file, theirs)]
    return Source(database_url, credentials, ids)


# db copy


@pytest.mark.backends("sqlite")
def test_copy_to_postgres_keeps_every_row_and_id(
    empty_postgres: str, source: Source
) -> None:
    result = copy(source.url, empty_postgres)

    assert result.exit_code == 0, result.output
    copied = table_rows(empty_postgres)
    original = table_rows(source.url)
    assert [name for name, rows in original.items() if not rows] == []
    assert copied == original
    assert null_json_counts(empty_postgres) == null_json_counts(source.url)
    assert re.search(r"^tickets\s+4 →\s+4$", result.stderr, re.MULTILINE)
    assert re.search(r"^ticket_events\s+7 →\s+7$", result.stderr, re.MULTILINE)
    assert "rate_limit_buckets" not in result.stderr


@pytest.mark.backends("sqlite")
def test_copy_names_the_files_directory_to_move(
    empty_postgres: str, source: Source
) -> None:
    result = copy(source.url, empty_postgres)

    files = sqlite_file(source.url)
    assert files is not None
    expected = f"copy {files}.files to the target's HELPLINE_BLOB_DIR"
    assert expected in result.stderr


@pytest.mark.backends("sqlite")
def test_copied_tickets_show_the_same_on_the_target(
    empty_postgres: str, source: Source
) -> None:
    copy(source.url, empty_postgres)

    for ticket_id in source.ticket_ids:
        assert show_ticket(empty_postgres, ticket_id) == show_ticket(
            source.url, ticket_id
        )


@pytest.mark.backends("sqlite")
def test_copied_key_works_and_new_rows_get_ids_past_the_copied_ones(
    empty_postgres: str, source: Source, start_server: StartServer, tmp_path: Path
) -> None:
    copy(source.url, empty_postgres)
    server = start_server(database_url=empty_postgres, blob_dir=str(tmp_path / "pg"))

    with httpx.Client(base_url=server.url, timeout=10) as client:
        new = post_ticket(client, source.credentials)
        with_file = post_ticket_with_file(client, source.credentials)
        post_feedback(client, source.credentials)
        replayed = client.post(
            "/api/help/ticket",
            json=VALID_REQUEST,
            headers=source.credentials.headers(**{"Idempotency-Key": IDEMPOTENCY_KEY}),
        )

    assert new["ticketId"] > max(source.ticket_ids)
    assert with_file["ticketId"] > new["ticketId"]
    assert replayed.headers["idempotent-replayed"] == "true"
    assert replayed.json()["ticketId"] == source.ticket_ids[0]


@pytest.mark.backends("sqlite")
def test_copy_back_from_postgres_to_a_new_sqlite_file_keeps_every_row(
    empty_postgres: str, source: Source, tmp_path: Path
) -> None:
    back = f"sqlite:///{tmp_path / 'back' / 'helpline.db'}"
    copy(source.url, empty_postgres)

    result = copy(empty_postgres, back)

    assert result.exit_code == 0, result.output
    assert table_rows(back) == table_rows(source.url)
    assert null_json_counts(back) == null_json_counts(source.url)
    assert searched(back, "camera") == searched(source.url, "camera") != []


def searched(url: str, word: str) -> list[int]:
    """The tickets SQLite's search index finds for ``word``, after checking that
    the index agrees with the tickets' own text."""
    path = sqlite_file(url)
    assert path is not None
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute(
            "INSERT INTO tickets_search (tickets_search, rank) "
            "VALUES ('integrity-check', 1)"
        )
        found = connection.execute(
            "SELECT rowid FROM tickets_search WHERE tickets_search MATCH ? "
            "ORDER BY rowid",
            (word,),
        )
        return [rowid for (rowid,) in found]


@pytest.mark.backends("sqlite")
def test_copy_into_a_database_with_an_organization_fails_and_writes_nothing(
    migrated_postgres: str, source: Source
) -> None:
    target = migrated_postgres
    store = AdminStore(target)
    store.create_organization("initech", now_ms=now_ms())
    store.close()
    before = table_rows(target)

    result = copy(source.url, target)

    assert result.exit_code == 1
    assert f"{target} already holds 1 organization(s)" in result.stderr
    assert table_rows(target) == before


@pytest.mark.backends("sqlite")
def test_copy_into_the_same_database_is_a_usage_error(database_url: str) -> None:
    result = copy(database_url, database_url)

    assert result.exit_code == 2
    assert "--from and --to name the same database" in result.stderr


@pytest.mark.backends("sqlite")
def test_copy_in_batches_of_two_keeps_every_row(
    empty_postgres: str, source: Source
) -> None:
    migrated(empty_postgres)

    counts = copy_database(source.url, empty_postgres, now_ms=now_ms(), batch_rows=2)

    assert table_rows(empty_postgres) == table_rows(source.url)
    assert {count.table: count.target for count in counts}["ticket_events"] == 7


@pytest.mark.backends("sqlite")
def test_copy_leaves_expired_idempotency_claims_behind(
    empty_postgres: str, source: Source
) -> None:
    migrated(empty_postgres)
    later = now_ms() + IDEMPOTENCY_WINDOW_MS + 60_000

    counts = copy_database(source.url, empty_postgres, now_ms=later)

    claims = {count.table: count for count in counts}["idempotency_keys"]
    assert (claims.source, claims.target) == (0, 0)
    assert table_rows(empty_postgres)["tickets"] == table_rows(source.url)["tickets"]


@pytest.mark.backends("sqlite")
def test_copy_failing_midway_leaves_the_target_empty(
    empty_postgres: str, source: Source
) -> None:
    migrated(empty_postgres)
    engine = make_engine(empty_postgres)
    with engine.begin() as connection:
        # History is copied last, after every other table's rows.
        connection.execute(
            sa.text("ALTER TABLE ticket_events ADD CONSTRAINT refuse_all CHECK (false)")
        )
    engine.dispose()

    result = copy(source.url, empty_postgres)

    assert result.exit_code == 1
    assert "the copy failed and nothing was kept in" in result.stderr
    assert "refuse_all" in result.stderr
    assert all(rows == [] for rows in table_rows(empty_postgres).values())


# db backup


def backup(database_url: str, output: Path, *extra: str) -> Result:
    return run("db", "backup", "--database", database_url, str(output), *extra)


def ticket_ids_and_orphans(path: Path) -> tuple[list[int], int]:
    """The backup's ticket ids, and how many tickets lack their 'created' event."""
    with sqlite3.connect(path) as connection:
        ids = [
            row[0] for row in connection.execute("SELECT id FROM tickets ORDER BY id")
        ]
        orphans = connection.execute(
            "SELECT count(*) FROM tickets AS t WHERE NOT EXISTS (SELECT 1 FROM"
            " ticket_events AS e WHERE e.ticket_id = t.id AND e.kind = 'created')"
        ).fetchone()[0]
    connection.close()
    return ids, orphans


class TicketStream:
    """Tickets posted one after another from a thread until stopped."""

    def __init__(self, server: LiveServer, credentials: Credentials) -> None:
        self._server = server
        self._credentials = credentials
        self._stop = threading.Event()
        self._acknowledged = 0
        self._changed = threading.Condition()
        self.failures: list[dict[str, Any]] = []
        self._thread = threading.Thread(target=self._post, daemon=True)

    def __enter__(self) -> TicketStream:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    @property
    def acknowledged(self) -> int:
        with self._changed:
            return self._acknowledged

    def wait_past(self, count: int) -> None:
        """Wait until more than ``count`` tickets are stored and acknowledged."""
        with self._changed:
            assert self._changed.wait_for(lambda: self._acknowledged > count, 10)

    def _post(self) -> None:
        payload = {**VALID_REQUEST, "body": "A long description. " * 250}
        with httpx.Client(base_url=self._server.url, timeout=10) as client:
            while not self._stop.is_set():
                response = client.post(
                    "/api/help/ticket",
                    json=payload,
                    headers=self._credentials.headers(),
                )
                if response.json()["success"] is not True:
                    self.failures.append(response.json())
                with self._changed:
                    self._acknowledged += 1
                    self._changed.notify_all()


@pytest.mark.backends("sqlite")
def test_backup_while_tickets_arrive_holds_a_consistent_prefix(
    database_url: str,
    server: LiveServer,
    credentials: Credentials,
    admin: AdminStore,
    tmp_path: Path,
) -> None:
    database = sqlite_file(database_url)
    assert database is not None
    output = tmp_path / "backup.db"
    remaining_after_step: list[int] = []

    with TicketStream(server, credentials) as stream:

        def one_more_ticket(remaining: int, _total: int) -> None:
            previous = remaining_after_step[-1:] or [remaining + 1]
            assert remaining < previous[0], "the backup restarted"
            remaining_after_step.append(remaining)
            stream.wait_past(stream.acknowledged)

        stream.wait_past(19)
        # One page per step, and a ticket committed between any two steps.
        report = backup_sqlite(
            database, output, pages_per_step=1, on_step=one_more_ticket
        )
        acknowledged = stream.acknowledged

    ids, orphans = ticket_ids_and_orphans(output)
    assert stream.failures == []
    assert ids == list(range(1, len(ids) + 1))
    assert orphans == 0
    assert 20 <= report.ticket_count == len(ids)
    assert report.ticket_count <= acknowledged - len(remaining_after_step)
    assert len(remaining_after_step) > 20
    assert remaining_after_step[-1] == 0
    assert admin.count_tickets() == stream.acknowledged
    with httpx.Client(base_url=server.url, timeout=10) as client:
        new = post_ticket(client, credentials)
    assert new["ticketId"] == stream.acknowledged + 1


@pytest.fixture
def backups(tmp_path: Path) -> Path:
    """A directory of its own for backups, apart from the database's files."""
    directory = tmp_path / "backups"
    directory.mkdir()
    return directory


@pytest.mark.backends("sqlite")
def test_backup_command_reports_path_size_and_tickets(
    database_url: str, api: httpx.Client, credentials: Credentials, backups: Path
) -> None:
    post_ticket(api, credentials)
    post_ticket(api, credentials)
    output = backups / "helpline.db"

    result = backup(database_url, output)

    assert result.exit_code == 0, result.output
    size = output.stat().st_size
    assert f"{output}: {size} bytes" in result.stderr
    assert "2 tickets, integrity ok" in result.stderr
    with sqlite3.connect(output) as connection:
        mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
    connection.close()
    assert mode == "delete"
    assert [path.name for path in backups.iterdir()] == ["helpline.db"]


@pytest.mark.backends("sqlite")
def test_backup_refuses_to_overwrite_a_file_without_force(
    database_url: str, backups: Path
) -> None:
    output = backups / "helpline.db"
    output.write_bytes(b"an older backup")

    refused = backup(database_url, output)
    kept = output.read_bytes()
    forced = backup(database_url, output, "--force")

    assert refused.exit_code == 1
    assert "already exists; pass --force to overwrite it" in refused.stderr
    assert kept == b"an older backup"
    assert forced.exit_code == 0, forced.output
    assert output.read_bytes().startswith(b"SQLite format 3\x00")
    assert [path.name for path in backups.iterdir()] == ["helpline.db"]


def test_backup_of_postgres_is_a_usage_error_naming_pg_dump(backups: Path) -> None:
    url = "postgresql://helpline@db.example:5432/helpline"

    result = backup(url, backups / "helpline.db")

    assert result.exit_code == 2
    assert f"pg_dump --format=custom --file=helpline.dump {url}" in result.stderr
    assert list(backups.iterdir()) == []


def test_backup_refusal_for_postgres_hides_the_password(backups: Path) -> None:
    url = "postgresql://helpline:secret@db.example:5432/helpline"

    result = backup(url, backups / "helpline.db")

    assert result.exit_code == 2
    assert "helpline:***@db.example" in result.stderr
    assert "secret" not in result.stderr
