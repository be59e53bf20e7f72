"""The database goes away under load and comes back: prompt 503s meanwhile, then
recovery without a restart, and no acknowledged ticket missing.

The test runs a PostgreSQL server of its own (initdb in a temporary directory), so
that stopping it touches nothing else.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from helpline.storage.engine import make_engine

from .conftest import VALID_REQUEST
from .processes import free_port
from .test_scale_out import add_key, start_nodes

POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")
CONNECT_TIMEOUT_S = 2.0
SENDERS = 8


class PrivateServer:
    """A PostgreSQL server in a directory of its own, run as the postgres user."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="helpline-pg-", dir="/tmp"))
        shutil.chown(self.directory, "postgres", "postgres")
        self.data = self.directory / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/helpline"

    def initialize(self) -> None:
        self._as_postgres(
            "initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres"
        )
        self.start()
        self._as_postgres(
            "createdb", "-h", "127.0.0.1", "-p", str(self.port), "helpline"
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1"
        self._as_postgres(
            "pg_ctl", "-D", str(self.data), "-o", options, "-w", "-l",
            str(self.directory / "server.log"), "start",
        )  # fmt: skip

    def stop(self) -> None:
        self._as_postgres("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")

    def remove(self) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", str(POSTGRES_BIN / "pg_ctl"),
             "-D", str(self.data), "-m", "immediate", "stop"],
            capture_output=True, check=False,
        )  # fmt: skip
        shutil.rmtree(self.directory, ignore_errors=True)

    def _as_postgres(self, program: str, *arguments: str) -> None:
        command = ["runuser", "-u", "postgres", "--", str(POSTGRES_BIN / program)]
        subprocess.run(
            [*command, *arguments], check=True, capture_output=True, timeout=60
        )


@pytest.fixture
def private_server() -> Iterator[PrivateServer]:
    if os.geteuid() != 0 or not (POSTGRES_BIN / "initdb").exists():
        reason = "needs root and PostgreSQL 15's initdb to run a private server"
        if os.environ.get("HELPLINE_TEST_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    server = PrivateServer()
    try:
        server.initialize()
        yield server
    finally:
        server.remove()


@dataclass
class Load:
    """Creates sent by SENDERS threads spread over the nodes, with what each got."""

    urls: list[str]
    headers: dict[str, str]
    acknowledged: dict[int, str] = field(default_factory=dict)
    refusals: list[tuple[float, httpx.Response]] = field(default_factory=list)
    other: list[str] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for sender in range(SENDERS):
            url = self.urls[sender % len(self.urls)]
            thread = threading.Thread(target=self._run, args=(sender, url))
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self.stopping.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def _run(self, sender: int, url: str) -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            for number in range(100_000):
                if self.stopping.is_set():
                    return
                self._send(client, f"Outage ticket {sender}-{number}")

    def _send(self, client: httpx.Client, subject: str) -> None:
        started = time.monotonic()
        try:
            response = client.post(
                "/api/help/ticket",
                json={**VALID_REQUEST, "subject": subject},
                headers=self.headers,
            )
        except httpx.HTTPError as error:
            self.other.append(repr(error))
            return
        if response.status_code == 200 and response.json()["success"]:
            self.acknowledged[response.json()["ticketId"]] = subject
        elif response.status_code == 503:
            self.refusals.append((time.monotonic() - started, response))
        else:
            self.other.append(f"{response.status_code} {response.text}")


def test_database_outage_answers_503_promptly_then_recovers_losing_nothing(
    private_server: PrivateServer, tmp_path: Path
) -> None:
    url = private_server.url
    nodes = start_nodes(
        2, url, tmp_path, HELPLINE_DB_CONNECT_TIMEOUT=str(CONNECT_TIMEOUT_S)
    )
    load = Load([node.url for node in nodes], add_key(url))
    try:
        load.start()
        wait_for(lambda: len(load.acknowledged) >= 200)
        private_server.stop()
        wait_for(lambda: len(load.refusals) >= 50)
        during = len(load.acknowledged)
        ready_during = [httpx.get(f"{n.url}/readyz", timeout=10) for n in nodes]

        private_server.start()
        wait_for(lambda: len(load.acknowledged) >= during + 200, timeout=30)
        ready_after = [httpx.get(f"{n.url}/readyz", timeout=10) for n in nodes]
    finally:
        load.stop()
        for node in nodes:
            node.stop()

    assert load.other == []
    assert [ready.status_code for ready in ready_during] == [503, 503]
    assert [ready.status_code for ready in ready_after] == [200, 200]
    for elapsed, refusal in load.refusals:
        assert elapsed < CONNECT_TIMEOUT_S + 3
        assert refusal.json()["error"] is True
        assert refusal.json()["ticketId"] is None
        assert "retry" in refusal.json()["errorMsg"]
    stored = stored_subjects(url)
    missing = {
        ticket_id: subject
        for ticket_id, subject in load.acknowledged.items()
        if stored.get(ticket_id) != subject
    }
    assert missing == {}


def stored_subjects(url: str) -> dict[int, str]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT id, subject FROM tickets"))
            return {int(row[0]): str(row[1]) for row in rows}
    finally:
        engine.dispose()


def wait_for(condition: object, *, timeout: float = 20) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not come true in time")
        time.sleep(0.05)
