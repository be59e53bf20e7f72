"""A server killed with SIGKILL under load, again and again, loses no acknowledged
ticket and leaves nothing half-written, on each backend."""

from __future__ import annotations

import concurrent.futures
import random
import signal
import threading
import time
from pathlib import Path

import httpx
import sqlalchemy as sa

from helpline.storage.admin import AdminStore
from helpline.storage.engine import make_engine

from .conftest import VALID_REQUEST, organization_with_key
from .processes import ServerProcess
from .test_rma import VALID_RMA

ROUNDS = 3
SENDERS = 12


class Acknowledged:
    """What clients were told was stored: ticket id → (kind, subject)."""

    def __init__(self) -> None:
        self.tickets: dict[int, tuple[str, str]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.tickets)

    def add(self, ticket_id: int, kind: str, subject: str) -> None:
        with self._lock:
            self.tickets[ticket_id] = (kind, subject)


def send_until_refused(
    url: str, headers: dict[str, str], sender: int, acknowledged: Acknowledged
) -> None:
    """Create tickets and RMAs one after another until the server is gone."""
    with httpx.Client(base_url=url, timeout=10) as client:
        for number in range(100_000):
            name = f"Kill test {sender}-{number}-{random.random():.6f}"  # noqa: S311
            if number % 4 == 0:  # an RMA is titled after its device
                kind, subject = "rma", f"RMA: {name}"
                request = {**VALID_RMA, "deviceName": name}
            else:
                kind, subject = "ticket", name
                request = {**VALID_REQUEST, "subject": name}
            try:
                response = client.post(
                    f"/api/help/{kind}", json=request, headers=headers
                )
            except httpx.TransportError:
                return
            if response.status_code == 200 and response.json()["success"]:
                acknowledged.add(response.json()["ticketId"], kind, subject)


def kill_mid_load(
    workdir: Path,
    arguments: list[str],
    headers: dict[str, str],
    acknowledged: Acknowledged,
) -> None:
    node = ServerProcess(workdir, *arguments)
    with concurrent.futures.ThreadPoolExecutor(SENDERS) as pool:
        senders = [
            pool.submit(send_until_refused, node.url, headers, sender, acknowledged)
            for sender in range(SENDERS)
        ]
        # Under load first: a slow moment of the machine (a disk busy writing
        # back) must not leave a round with nothing in flight when it is killed.
        try:
            wait_for_acknowledgements(acknowledged, more_than=len(acknowledged), by=100)
            time.sleep(random.uniform(0, 1.0))  # noqa: S311 - a moment, not a secret
        finally:
            node.stop(signal.SIGKILL)
        for sender in senders:
            sender.result(timeout=30)


def wait_for_acknowledgements(
    acknowledged: Acknowledged, *, more_than: int, by: int, timeout: float = 30
) -> None:
    deadline = time.monotonic() + timeout
    while len(acknowledged) < more_than + by:
        assert time.monotonic() < deadline, f"fewer than {by} tickets acknowledged"
        time.sleep(0.01)


def test_sigkill_under_load_loses_no_acknowledged_ticket_and_half_writes_nothing(
    database_url: str, blob_dir: str | None, tmp_path: Path
) -> None:
    store = AdminStore(database_url)
    headers = organization_with_key(store)
    store.close()
    arguments = ["--database", database_url]
    acknowledged = Acknowledged()

    for number in range(ROUNDS):
        workdir = tmp_path / f"round-{number}"
        workdir.mkdir()
        kill_mid_load(workdir, arguments, headers, acknowledged)
    survivor = ServerProcess(tmp_path, *arguments)  # starts cleanly after the kills
    survivor.stop()

    assert len(acknowledged) >= 100 * ROUNDS
    stored = stored_tickets(database_url)
    wrong = {
        ticket_id: (told, stored.get(ticket_id))
        for ticket_id, told in acknowledged.tickets.items()
        if stored.get(ticket_id) != told
    }
    assert wrong == {}
    assert half_written(database_url) == []


def stored_tickets(url: str) -> dict[int, tuple[str, str]]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT id, kind, subject FROM tickets"))
            return {int(row[0]): (str(row[1]), str(row[2])) for row in rows}
    finally:
        engine.dispose()


HALF_WRITTEN = {
    "ticket without exactly one created event": """
        SELECT t.id FROM tickets AS t
        WHERE (SELECT count(*) FROM ticket_events AS e
               WHERE e.ticket_id = t.id AND e.kind = 'created') <> 1
    """,
    "RMA ticket without its details": """
        SELECT t.id FROM tickets AS t LEFT JOIN rma_requests AS r ON r.ticket_id = t.id
        WHERE t.kind = 'rma' AND r.ticket_id IS NULL
    """,
    "open-ticket counter off": """
        SELECT c.organization_id FROM organization_counters AS c
        WHERE c.open_tickets <> (SELECT count(*) FROM tickets AS t
                                 WHERE t.organization_id = c.organization_id
                                   AND t.is_open)
    """,
    "open-ticket day counter off": """
        SELECT d.organization_id FROM open_ticket_days AS d
        WHERE d.open_tickets <> (SELECT count(*) FROM tickets AS t
                                 WHERE t.organization_id = d.organization_id
                                   AND t.created_at_ms / 86400000 = d.day
                                   AND t.is_open)
    """,
    "open ticket without its day counter": """
        SELECT t.id FROM tickets AS t
        WHERE t.is_open AND NOT EXISTS (
            SELECT 1 FROM open_ticket_days AS d
            WHERE d.organization_id = t.organization_id
              AND d.day = t.created_at_ms / 86400000)
    """,
    "status counter off": """
        SELECT c.organization_id FROM ticket_status_counts AS c
        WHERE c.tickets <> (SELECT count(*) FROM tickets AS t
                            WHERE t.organization_id = c.organization_id
                              AND t.status = c.status)
    """,
    "created event neither left to the dispatcher nor with its messages": """
        SELECT e.id FROM ticket_events AS e
        WHERE e.kind = 'created' AND e.outbox_pending IS NULL
          AND NOT EXISTS (SELECT 1 FROM outbox_messages AS m WHERE m.event_id = e.id)
    """,
}
# SQLite's search index takes a batch's tickets in the batch's own transaction.
HALF_WRITTEN_ON_SQLITE = {
    "ticket missing from the search index": """
        SELECT t.id FROM tickets AS t
        WHERE NOT EXISTS (SELECT 1 FROM tickets_search_docsize AS d WHERE d.id = t.id)
    """,
}


def half_written(url: str) -> list[tuple[str, int]]:
    """Every sign of a write that was cut in half: (what, which id)."""
    engine = make_engine(url)
    found = []
    checks = dict(HALF_WRITTEN)
    if engine.dialect.name == "sqlite":
        checks.update(HALF_WRITTEN_ON_SQLITE)
    try:
        with engine.connect() as connection:
            for problem, query in checks.items():
                found += [
                    (problem, row[0]) for row in connection.execute(sa.text(query))
                ]
    finally:
        engine.dispose()
    return found
