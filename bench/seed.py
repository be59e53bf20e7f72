"""A SQLite database holding a million open tickets, built once per run.

The schema comes from ``helpline db upgrade`` and the organization with its key
from a first ``helpline serve``, exactly as an operator gets them. The tickets
are then written with plain SQL, a few hundred thousand per transaction, with
their 'created' events and the counters the API keeps beside them (per
organization, status and day), as if the key had created one ticket every ~32
seconds over the last year. Rounds copy the file instead of seeding again.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from servers import (
    VENV_BIN,
    BenchError,
    Database,
    environment,
    running_helpline,
    sqlite_url,
)

from helpline.storage.schema import REBUILD_SEARCH

DAY_MS = 86_400_000
SEEDED_DAYS = 365
TICKETS_PER_TRANSACTION = 250_000
# What integrators send, in turn; each ticket also gets its own serial number.
CATALOGUE = [
    {
        "subject": "Camera connectivity issue",
        "body": "My camera is not connecting to the network properly.",
        "product_type": "Camera",
        "serial_prefix": "RCAM",
    },
    {
        "subject": "Camera offline after firmware update",
        "body": "Since last night's update the camera shows as offline.",
        "product_type": "Camera",
        "serial_prefix": "RCAM",
    },
    {
        "subject": "Door access reader rejects badges",
        "body": "Badges that worked yesterday are rejected at the front door.",
        "product_type": "Access Control",
        "serial_prefix": "RACX",
    },
    {
        "subject": "Sensor reports wrong temperature",
        "body": "The environmental sensor reads ten degrees above the thermostat.",
        "product_type": "Sensor",
        "serial_prefix": "RSEN",
    },
    {
        "subject": "Cannot export footage",
        "body": "Exporting a clip from yesterday fails with an unknown error.",
        "product_type": "Camera",
        "serial_prefix": "RCAM",
    },
    {
        "subject": "Alarm panel keeps beeping",
        "body": "The alarm panel beeps every few minutes and shows no alert.",
        "product_type": "Alarm",
        "serial_prefix": "RALM",
    },
]

_INSERT_TICKETS = """
WITH RECURSIVE
    n(i) AS (SELECT :first UNION ALL SELECT i + 1 FROM n WHERE i + 1 < :stop),
    catalogue(k, subject, body, product_type, serial_prefix) AS (
        SELECT key, value ->> 'subject', value ->> 'body', value ->> 'product_type',
               value ->> 'serial_prefix'
        FROM json_each(:catalogue)
    ),
    numbered(i, at_ms) AS (SELECT i, :first_ms + i * :span_ms / :count FROM n)
INSERT INTO tickets (
    organization_id, api_key_id, submitter_email, kind, status, subject, body,
    collaborators, serial_numbers, product_type, service_type,
    console_access_granted, console_access_expires_at_ms, warnings,
    created_at_ms, updated_at_ms, is_open
)
SELECT
    :organization_id, :api_key_id, :submitter_email, 'ticket', 'Open',
    c.subject, c.body,
    CASE WHEN i % 3 = 0 THEN '["it@example.com"]' END,
    '["' || c.serial_prefix || '-' || printf('%04d-%04X', i % 10000, i % 65536)
        || '"]',
    c.product_type, 'Support',
    i % 2, CASE WHEN i % 2 = 1 THEN at_ms + :console_access_ms END, NULL,
    at_ms, at_ms, 1
-- CROSS JOIN keeps the numbers as the outer loop, so ids follow creation times.
FROM numbered CROSS JOIN catalogue AS c
WHERE c.k = i % :catalogue_size
"""
_INSERT_EVENTS = """
INSERT INTO ticket_events (ticket_id, kind, actor, "before", "after", created_at_ms)
SELECT id, 'created', submitter_email, NULL, '{"status":"Open"}', created_at_ms
FROM tickets WHERE id > ?
"""
_SET_OPEN_COUNTERS = """
INSERT OR REPLACE INTO organization_counters (organization_id, open_tickets)
SELECT organization_id, count(*) FROM tickets WHERE is_open GROUP BY organization_id
"""
_SET_OPEN_DAYS = """
INSERT OR REPLACE INTO open_ticket_days (organization_id, day, open_tickets)
SELECT organization_id, created_at_ms / 86400000, count(*) FROM tickets WHERE is_open
GROUP BY 1, 2
"""
_SET_STATUS_COUNTS = """
INSERT OR REPLACE INTO ticket_status_counts (organization_id, status, tickets)
SELECT organization_id, status, count(*) FROM tickets
GROUP BY organization_id, status
"""


@dataclass(frozen=True, slots=True)
class SeededDatabase:
    path: Path
    api_key: str
    tickets: int
    first_created_ms: int
    last_created_ms: int
    seconds: float

    def copy_to(self, target: Path) -> Database:
        """A copy for one round; no server may have the seeded file open."""
        shutil.copyfile(self.path, target)
        return Database(
            sqlite_url(target), api_key=self.api_key, tickets_before=self.tickets
        )

    def as_json(self) -> dict[str, object]:
        return {
            "tickets": self.tickets,
            "seconds": round(self.seconds, 1),
            "size_mib": round(self.path.stat().st_size / 2**20, 1),
            "first_created_ms": self.first_created_ms,
            "last_created_ms": self.last_created_ms,
        }


def seed_database(path: Path, *, tickets: int, pid_dir: Path) -> SeededDatabase:
    """Build the database at ``path`` with ``tickets`` open tickets of one
    organization, created over the last year."""
    started = time.monotonic()
    _upgrade(path)
    api_key = _bootstrap(path, pid_dir=pid_dir)

    last_ms = int(time.time() * 1000) - 60_000
    first_ms = last_ms - SEEDED_DAYS * DAY_MS
    _insert_tickets(path, tickets=tickets, first_ms=first_ms, last_ms=last_ms)

    return SeededDatabase(
        path=path,
        api_key=api_key,
        tickets=tickets,
        first_created_ms=first_ms,
        last_created_ms=last_ms,
        seconds=time.monotonic() - started,
    )


def _upgrade(path: Path) -> None:
    command = [str(VENV_BIN / "helpline"), "db", "upgrade"]
    finished = subprocess.run(  # noqa: S603 (our own argument list)
        [*command, "--database", sqlite_url(path)],
        env=environment(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if finished.returncode != 0:
        raise BenchError(f"helpline db upgrade failed:\n{finished.stderr}")


def _bootstrap(path: Path, *, pid_dir: Path) -> str:
    """Start ``helpline serve`` once, so that it creates the organization and its
    key as on any first start, and return the key it printed."""
    round_dir = path.parent / "bootstrap"
    round_dir.mkdir()
    database = Database(sqlite_url(path))
    with running_helpline(
        database, workers=1, round_dir=round_dir, pid_dir=pid_dir
    ) as server:
        return server.api_key


def _insert_tickets(path: Path, *, tickets: int, first_ms: int, last_ms: int) -> None:
    # Nothing serves this file yet, and a failed seed is simply redone: trade
    # durability for speed while writing, then leave it in WAL mode as Helpline
    # keeps it.
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=DELETE")
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("PRAGMA cache_size=-524288")  # 512 MiB
        key_id, organization_id, email = connection.execute(
            "SELECT id, organization_id, user_email FROM api_keys"
        ).fetchone()
        for first in range(0, tickets, TICKETS_PER_TRANSACTION):
            connection.execute("BEGIN")
            (last_id,) = connection.execute(
                "SELECT coalesce(max(id), 0) FROM tickets"
            ).fetchone()
            connection.execute(
                _INSERT_TICKETS,
                {
                    "first": first,
                    "stop": min(first + TICKETS_PER_TRANSACTION, tickets),
                    "count": max(tickets - 1, 1),
                    "first_ms": first_ms,
                    "span_ms": last_ms - first_ms,
                    "catalogue": json.dumps(CATALOGUE),
                    "catalogue_size": len(CATALOGUE),
                    "organization_id": organization_id,
                    "api_key_id": key_id,
                    "submitter_email": email,
                    "console_access_ms": 72 * 3_600_000,
                },
            )
            connection.execute(_INSERT_EVENTS, (last_id,))
            connection.execute("COMMIT")
        connection.execute("BEGIN")
        connection.execute(_SET_OPEN_COUNTERS)
        connection.execute(_SET_OPEN_DAYS)
        connection.execute(_SET_STATUS_COUNTS)
        connection.execute(REBUILD_SEARCH)
        connection.execute("COMMIT")
        connection.execute("PRAGMA journal_mode=WAL")
    finally:
        connection.close()
