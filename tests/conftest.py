"""Shared fixtures: a fresh database per test on each backend, a real server on a
socket."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import trustme
import uvicorn

from helpline.config import Settings
from helpline.domain.agents import Agent, hash_password
from helpline.domain.keys import ALL_PERMISSIONS, Permission, issue_key
from helpline.http import create_app
from helpline.observability import configure_logging
from helpline.storage.admin import AdminStore
from helpline.storage.console import ConsoleStore
from helpline.storage.engine import is_sqlite, make_engine
from helpline.storage.migrate import upgrade

# The vendor's published description, copied here so the tests run from any clone.
REFERENCE = Path(__file__).resolve().parent / "reference"


BACKENDS = ("sqlite", "postgresql")
# The server the PostgreSQL half of the suite runs on; .ci/run also sets
# HELPLINE_TEST_REQUIRE_POSTGRES=1, which turns "not reachable" from a skip into a
# failure.
POSTGRES_URL = os.environ.get(
    "HELPLINE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that touches a database runs once per backend, unless marked
    ``@pytest.mark.backends(...)`` with the ones it is about."""
    if "backend" in metafunc.fixturenames:
        only = metafunc.definition.get_closest_marker("backends")
        metafunc.parametrize("backend", only.args if only else BACKENDS, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


class PostgresDatabases:
    """Fresh databases on the test server, each a copy of one migrated template."""

    def __init__(self, url: str) -> None:
        self._server = sa.make_url(url)
        self._engine = sa.create_engine(
            self._server.set(drivername="postgresql+psycopg"),
            isolation_level="AUTOCOMMIT",
            poolclass=sa.pool.NullPool,
            connect_args={"connect_timeout": 3},
        )
        self._prefix = f"helpline_test_{os.getpid()}"
        self._template = f"{self._prefix}_template"
        self._count = 0

    def url_of(self, database: str) -> str:
        return self._server.set(database=database).render_as_string(hide_password=False)

    def prepare_template(self) -> None:
        self._execute(f"DROP DATABASE IF EXISTS {self._template} WITH (FORCE)")
        self._execute(f"CREATE DATABASE {self._template}")
        engine = make_engine(self.url_of(self._template))
        upgrade(engine)
        engine.dispose()

    def create(self) -> str:
        """A new migrated database; returns its name."""
        self._count += 1
        name = f"{self._prefix}_{self._count}"
        self._execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        self._execute(f"CREATE DATABASE {name} TEMPLATE {self._template}")
        return name

    def create_empty(self) -> str:
        self._count += 1
        name = f"{self._prefix}_{self._count}"
        self._execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        self._execute(f"CREATE DATABASE {name}")
        return name

    def drop(self, name: str) -> None:
        self._execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def close(self) -> None:
        self.drop(self._template)
        self._engine.dispose()

    def _execute(self, sql: str) -> None:
        with self._engine.connect() as connection:
            connection.execute(sa.text(sql))


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresDatabases]:
    """The PostgreSQL test server, or a skip naming why it is not reachable."""
    databases = PostgresDatabases(POSTGRES_URL)
    try:
        databases.prepare_template()
    except sa.exc.OperationalError as problem:
        reason = f"PostgreSQL at {POSTGRES_URL} is not reachable: {problem.orig}"
        if os.environ.get("HELPLINE_TEST_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason.strip())
        pytest.skip(reason.strip().splitlines()[0])
    yield databases
    databases.close()


@pytest.fixture
def database_url(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A fresh, migrated database for this test alone: an SQLite file, or a
    PostgreSQL database of its own."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'helpline.db'}"
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url
        return

    databases: PostgresDatabases = request.getfixturevalue("postgres")
    name = databases.create()
    yield databases.url_of(name)
    databases.drop(name)


@pytest.fixture
def blob_dir(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str | None:
    """The files directory a server of this test uses: beside the SQLite file, or
    (PostgreSQL needs one set) a directory of the test's own, also set in
    HELPLINE_BLOB_DIR for the commands."""
    if is_sqlite(database_url):
        return None
    directory = str(tmp_path / "files")
    monkeypatch.setenv("HELPLINE_BLOB_DIR", directory)
    return directory


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


def key_of(url: str, credentials: Credentials) -> tuple[int, int]:
    """The organization id and key id of ``credentials``."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            organization_id, key_id = connection.execute(
                sa.text("SELECT organization_id, id FROM api_keys WHERE prefix = :p"),
                {"p": credentials.prefix},
            ).one()
            return int(organization_id), int(key_id)
    finally:
        engine.dispose()


def organization_with_key(store: AdminStore, name: str = "acme") -> dict[str, str]:
    """Create the organization ``name`` with one key of every permission; the
    headers that present the key."""
    now_ms = int(time.time() * 1000)
    store.create_organization(name, now_ms=now_ms)
    key = issue_key()
    store.add_api_key(
        organization=name,
        key=key,
        user_email=f"ops@{name}.example",
        label=None,
        permissions=ALL_PERMISSIONS,
        now_ms=now_ms,
    )
    return {"x-auth-apikey": key.token, "x-auth-scheme": "api-token"}


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


PASSWORD = "correct horse battery"


def create_agent(
    store: ConsoleStore, email: str = "ann@example.com", name: str = "Ann"
) -> Agent:
    """An agent who signs in with ``PASSWORD``."""
    return store.create_agent(
        email=email,
        name=name,
        password_hash=hash_password(PASSWORD),
        now_ms=int(time.time() * 1000),
    )


@pytest.fixture
def store(database_url: str) -> Iterator[ConsoleStore]:
    """The console's store on this test's database."""
    console_store = ConsoleStore(database_url)
    yield console_store
    console_store.close()


@pytest.fixture
def ann(store: ConsoleStore) -> Agent:
    return create_agent(store)


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
            # As helpline serve runs: the console reads forwarding headers itself.
            proxy_headers=False,
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
def start_server(database_url: str, blob_dir: str | None) -> Iterator[StartServer]:
    """Start a server on this test's database; settings may be overridden."""
    servers: list[LiveServer] = []

    def start(**overrides: Any) -> LiveServer:
        settings = Settings(
            database_url=database_url,
            blob_dir=blob_dir,
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


# A certificate authority of the tests' own, for TLS servers started here.


@pytest.fixture
def authority() -> trustme.CA:
    """A certificate authority of the test's own, which nothing trusts by default."""
    return trustme.CA()


@pytest.fixture
def ca_file(authority: trustme.CA, tmp_path: Path) -> str:
    """``authority``'s certificate in a PEM file, as HELPLINE_TLS_CA_FILE names one."""
    path = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(path))
    return str(path)


def server_tls(authority: trustme.CA, name: str) -> ssl.SSLContext:
    """A server's TLS context with a certificate ``authority`` issued for ``name``
    (a host name or an address)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    authority.issue_cert(name).configure_cert(context)
    return context
