"""Shared fixtures: a fresh SQLite file per test, a real server on a socket."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from helpline.config import Settings
from helpline.domain.keys import ALL_PERMISSIONS, Permission, issue_key
from helpline.http import create_app
from helpline.observability import configure_logging
from helpline.storage.admin import AdminStore
from helpline.storage.engine import make_engine
from helpline.storage.migrate import upgrade

# The vendor's published description, copied here so the tests run from any clone.
REFERENCE = Path(__file__).resolve().parent / "reference"


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """A fresh, migrated SQLite file for this test alone."""
    url = f"sqlite:///{tmp_path / 'helpline.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture
def admin(database_url: str) -> Iterator[AdminStore]:
    store = AdminStore(database_url)
    yield store
    store.close()


@dataclass
class Credentials:
    organization: str
    prefix: str
    token: str
    user_email: str

    def headers(self, **extra: str) -> dict[str, str]:
        return {"x-auth-apikey": self.token, "x-auth-scheme": "api-token", **extra}


MakeKey = Callable[..., Credentials]


@pytest.fixture
def make_key(admin: AdminStore) -> MakeKey:
    """Create an API key (and its organization, if new) straight in the database."""

    def make(
        organization: str = "acme",
        *,
        user_email: str = "ops@acme.example",
        permissions: frozenset[Permission] = ALL_PERMISSIONS,
    ) -> Credentials:
        names = {org.name for org in admin.list_organizations()}
        if organization not in names:
            admin.create_organization(organization, now_ms=int(time.time() * 1000))
        issued = issue_key()
        admin.add_api_key(
            organization=organization,
            key=issued,
            user_email=user_email,
            label=None,
            permissions=permissions,
            now_ms=int(time.time() * 1000),
        )
        return Credentials(organization, issued.prefix, issued.token, user_email)

    return make


@pytest.fixture
def credentials(make_key: MakeKey) -> Credentials:
    return make_key()


class LiveServer:
    """Helpline's API on uvicorn and httptools, in a thread, on a loopback port."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(settings),
            http="httptools",
            loop="asyncio",
            lifespan="on",
            access_log=False,
            log_level="warning",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._socket]))

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()


StartServer = Callable[..., LiveServer]


@pytest.fixture
def start_server(database_url: str) -> Iterator[StartServer]:
    """Start a server on this test's database; settings may be overridden."""
    servers: list[LiveServer] = []

    def start(**overrides: Any) -> LiveServer:
        settings = Settings(
            database_url=database_url,
            rate_limit_per_second=0,
        )
        server = LiveServer(settings.with_overrides(**overrides))
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def server(start_server: StartServer) -> LiveServer:
    return start_server()


@pytest.fixture
def api(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


REFERENCE_REQUEST = {
    "body": "My camera is not connecting to the network properly.",
    "collaborators": ["<string>"],
    "consoleAccessGranted": True,
    "productType": "<string>",
    "serialNumbers": ["<string>"],
    "serviceType": "<string>",
    "subject": "Camera connectivity issue",
}

VALID_REQUEST = {
    "body": "My camera is not connecting to the network properly.",
    "collaborators": ["it@acme.example"],
    "consoleAccessGranted": True,
    "productType": "Camera",
    "serialNumbers": ["RCAM-1234-ABCD"],
    "serviceType": "Support",
    "subject": "Camera connectivity issue",
}


@pytest.fixture(autouse=True, scope="session")
def quiet_request_logs() -> None:
    """Request lines would drown pytest's output; warnings and errors still show."""
    configure_logging(log_format="console", level=logging.WARNING)
