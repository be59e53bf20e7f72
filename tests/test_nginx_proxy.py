"""Two ``helpline serve`` nodes on one PostgreSQL database behind nginx, which runs
``deploy/nginx/helpline.conf`` as committed, only its placeholders filled in."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpline.storage.admin import AdminStore

from .conftest import PostgresDatabases, organization_with_key
from .packages import debian_program
from .processes import ServerProcess, free_port

CONFIG = Path(__file__).resolve().parents[1] / "deploy" / "nginx" / "helpline.conf"
# Debian's nginx; nginx-light is the same binary plus a module Helpline does not use.
NGINX_PACKAGE = "nginx"
TICKET = {"subject": "Camera offline", "body": "It does not connect."}
MIB = 1024 * 1024

# Installing nginx on a fresh machine can take minutes on its own.
pytestmark = pytest.mark.timeout(600)


# nginx itself: found, or installed from Debian's packages


def find_nginx() -> str | None:
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")


@pytest.fixture(scope="module")
def nginx_binary() -> str:
    """The nginx program, installed first if missing."""
    return debian_program(find_nginx, NGINX_PACKAGE)


# nginx as a process, unprivileged


def unprivileged() -> dict[str, Any]:
    """Popen arguments that run a program as nobody when the tests run as root."""
    if os.geteuid() != 0:
        return {}
    return {"user": "nobody", "group": "nogroup", "extra_groups": []}


def render_config(runtime_dir: Path, *, listen: str, nodes: Sequence[str]) -> Path:
    """The committed config with its placeholders filled in, written to
    ``runtime_dir/nginx.conf``; raises ``ValueError`` if one is left unfilled."""
    values = {"listen": listen, "runtime_dir": str(runtime_dir)}
    values |= {f"node_{number}": node for number, node in enumerate(nodes, start=1)}
    text = CONFIG.read_text()
    for name, value in values.items():
        text = text.replace("{{" + name + "}}", value)
    if left := re.findall(r"\{\{\w+\}\}", text):
        raise ValueError(f"the config needs a value for {sorted(set(left))}")
    path = runtime_dir / "nginx.conf"
    path.write_text(text)
    return path


class NginxProcess:
    """``nginx -c CONFIG`` in the foreground; ready once ``/readyz`` answers 200
    through it. Raises ``RuntimeError`` with nginx's error log if it never is."""

    def __init__(self, binary: str, config: Path, *, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.runtime_dir = config.parent
        command = [
            binary,
            "-p",
            str(self.runtime_dir),
            "-e",
            str(self.runtime_dir / "error.log"),
            "-c",
            str(config),
            "-g",
            "daemon off;",
        ]
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            **unprivileged(),
        )
        try:
            self._wait_until_ready()
        except RuntimeError:
            self.stop()
            raise

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and self.process.poll() is None:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"nginx did not become ready:\n{self.error_log}")

    @property
    def error_log(self) -> str:
        path = self.runtime_dir / "error.log"
        return path.read_text() if path.exists() else "(no error log)"

    def access_log(self) -> list[dict[str, Any]]:
        """The access log's entries, complete once nginx has stopped."""
        lines = (self.runtime_dir / "access.log").read_text().splitlines()
        return [json.loads(line) for line in lines]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# A node that takes a request and dies before answering


class NodeDyingMidRequest:
    """A listener that reads each request's head, then closes the connection
    unanswered, as a node does that is killed while a request is in flight.

    It remembers the method and request id of every request that reached it.
    """

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self.received: list[tuple[str, str | None]] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            # Recorded before closing, so nginx's 502 comes after the record.
            with connection, contextlib.suppress(OSError):
                self.received.append(self._read_head(connection))

    @staticmethod
    def _read_head(connection: socket.socket) -> tuple[str, str | None]:
        connection.settimeout(5)
        head = b""
        while b"\r\n\r\n" not in head and (chunk := connection.recv(65536)):
            head += chunk
        method = head.split(b" ", 1)[0].decode()
        found = re.search(rb"(?im)^x-request-id: *(\S+)\r$", head)
        return method, found[1].decode() if found else None

    def posted_request_ids(self) -> set[str | None]:
        return {request_id for method, request_id in self.received if method == "POST"}

    def close(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        self._listener.close()


# The deployment: a database, nodes, nginx in front, an API key


@pytest.fixture
def shared_database(postgres: PostgresDatabases) -> Iterator[str]:
    """The URL of a fresh, migrated PostgreSQL database every node of a test uses."""
    name = postgres.create()
    yield postgres.url_of(name)
    postgres.drop(name)


@pytest.fixture
def blob_dir(tmp_path: Path) -> Path:
    return tmp_path / "files"


def stop_all(nodes: Sequence[ServerProcess]) -> None:
    for node in nodes:
        node.stop()


def address_of(node: ServerProcess) -> str:
    return node.url.removeprefix("http://")


@pytest.fixture
def start_node(
    shared_database: str, blob_dir: Path, tmp_path: Path
) -> Iterator[Callable[[], ServerProcess]]:
    """Start ``helpline serve`` on the shared database and blob directory."""
    started: list[ServerProcess] = []

    def start() -> ServerProcess:
        node = ServerProcess(
            tmp_path,
            "--database",
            shared_database,
            environment={"HELPLINE_BLOB_DIR": str(blob_dir)},
        )
        started.append(node)
        return node

    yield start
    stop_all(started)


@pytest.fixture
def nodes(start_node: Callable[[], ServerProcess]) -> list[ServerProcess]:
    return [start_node(), start_node()]


@pytest.fixture
def dying_node() -> Iterator[NodeDyingMidRequest]:
    node = NodeDyingMidRequest()
    yield node
    node.close()


@pytest.fixture
def runtime_dir() -> Iterator[Path]:
    """A directory nginx may write even as nobody: pytest's own are root's alone."""
    path = Path(tempfile.mkdtemp(prefix="helpline-nginx-"))
    if os.geteuid() == 0:
        shutil.chown(path, "nobody", "nogroup")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def start_nginx(
    nginx_binary: str, runtime_dir: Path
) -> Iterator[Callable[[Sequence[str]], NginxProcess]]:
    """Start nginx on the committed config, in front of the given node addresses."""
    started: list[NginxProcess] = []

    def start(addresses: Sequence[str]) -> NginxProcess:
        port = free_port()
        config = render_config(runtime_dir, listen=f"127.0.0.1:{port}", nodes=addresses)
        started.append(NginxProcess(nginx_binary, config, port=port))
        return started[-1]

    yield start
    for proxy in started:
        proxy.stop()


@pytest.fixture
def nginx(
    start_nginx: Callable[[Sequence[str]], NginxProcess], nodes: list[ServerProcess]
) -> NginxProcess:
    return start_nginx([address_of(node) for node in nodes])


@pytest.fixture
def admin(shared_database: str) -> Iterator[AdminStore]:
    store = AdminStore(shared_database)
    yield store
    store.close()


@pytest.fixture
def api_headers(admin: AdminStore) -> dict[str, str]:
    """The headers of a valid API key, created straight in the shared database."""
    return organization_with_key(admin)


@pytest.fixture
def client(api_headers: dict[str, str], nginx: NginxProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=nginx.url, headers=api_headers, timeout=30) as http:
        yield http


def open_tickets(client: httpx.Client, request_ids: Sequence[str]) -> list[Any]:
    """POST one ticket per request id; the JSON answers, each checked to be 200."""
    answers = []
    for request_id in request_ids:
        response = client.post(
            "/api/help/ticket", json=TICKET, headers={"x-request-id": request_id}
        )
        assert response.status_code == 200, response.text
        answers.append(response.json())
    return answers


def served_request_ids(node: ServerProcess, path: str = "/api/help/ticket") -> set[str]:
    """The ids of the requests for ``path`` the node logged, complete once it has
    stopped (it logs a request after answering it)."""
    lines = [json.loads(line) for line in node.stderr.splitlines() if line[:1] == "{"]
    return {
        line["request_id"]
        for line in lines
        if line.get("event") == "request" and line.get("path") == path
    }


# Tests


def test_tickets_are_spread_over_both_nodes_and_each_stored_once(
    client: httpx.Client, nodes: list[ServerProcess], admin: AdminStore
) -> None:
    request_ids = [f"spread-{number}" for number in range(100)]

    answers = open_tickets(client, request_ids)
    stop_all(nodes)

    assert [answer["success"] for answer in answers] == [True] * 100
    assert len({answer["ticketId"] for answer in answers}) == 100
    assert admin.count_tickets() == 100
    first, second = (served_request_ids(node) for node in nodes)
    assert first | second == set(request_ids)
    # Round robin alternates, and no request was sent to both nodes.
    assert (len(first), len(second)) == (50, 50)


def test_upload_of_3_mib_passes_through_and_lands_in_the_shared_blob_dir(
    client: httpx.Client, blob_dir: Path
) -> None:
    content = os.urandom(3 * MIB)
    form = {
        "request": (None, json.dumps(TICKET), "application/json"),
        "file": ("camera.log", content, "application/octet-stream"),
    }

    response = client.post("/api/help/ticketWithFile", files=form)

    assert response.status_code == 200, response.text
    assert response.json()["success"] is True
    digest = hashlib.sha256(content).hexdigest()
    assert (blob_dir / digest[:2] / digest[2:4] / digest).read_bytes() == content


def test_json_body_over_the_node_limit_is_refused_by_the_node_not_nginx(
    client: httpx.Client,
) -> None:
    oversize = {**TICKET, "body": "x" * (MIB + 1)}

    response = client.post("/api/help/ticket", json=oversize)

    assert response.status_code == 413
    assert response.json()["error"] is True


def test_after_one_node_stops_every_ticket_is_served_by_the_other(
    client: httpx.Client,
    nodes: list[ServerProcess],
    nginx: NginxProcess,
    admin: AdminStore,
) -> None:
    stopped, remaining = nodes
    stopped.stop()
    request_ids = [f"failover-{number}" for number in range(20)]

    answers = open_tickets(client, request_ids)
    remaining.stop()

    assert [answer["success"] for answer in answers] == [True] * 20
    assert admin.count_tickets() == 20
    assert served_request_ids(remaining) == set(request_ids)
    assert "connect() failed (111: Connection refused)" in nginx.error_log


def test_request_id_of_the_client_reaches_the_node_and_comes_back(
    client: httpx.Client, nodes: list[ServerProcess]
) -> None:
    response = client.post(
        "/api/help/ticket", json=TICKET, headers={"X-Request-Id": "test-123"}
    )
    stop_all(nodes)

    assert response.headers["x-request-id"] == "test-123"
    assert {"test-123"} == set().union(*(served_request_ids(n) for n in nodes))


def test_request_without_an_id_gets_the_one_nginx_made_and_logged(
    client: httpx.Client, nodes: list[ServerProcess], nginx: NginxProcess
) -> None:
    response = client.post("/api/help/ticket", json=TICKET)
    stop_all(nodes)
    nginx.stop()

    request_id = response.headers["x-request-id"]
    [logged] = [
        entry for entry in nginx.access_log() if entry["uri"] == "/api/help/ticket"
    ]
    assert logged["request_id"] == request_id
    assert logged["status"] == 200
    assert {request_id} == set().union(*(served_request_ids(n) for n in nodes))


def test_ticket_that_reached_a_dying_node_is_not_sent_to_another(
    start_node: Callable[[], ServerProcess],
    start_nginx: Callable[[Sequence[str]], NginxProcess],
    dying_node: NodeDyingMidRequest,
    api_headers: dict[str, str],
) -> None:
    node = start_node()
    proxy = start_nginx([dying_node.address, address_of(node)])
    request_ids = [f"dying-{number}" for number in range(6)]

    with httpx.Client(base_url=proxy.url, headers=api_headers, timeout=30) as http:
        statuses = {
            request_id: http.post(
                "/api/help/ticket", json=TICKET, headers={"x-request-id": request_id}
            ).status_code
            for request_id in request_ids
        }
    node.stop()

    lost = {request_id for request_id, status in statuses.items() if status == 502}
    stored = {request_id for request_id, status in statuses.items() if status == 200}
    # Round robin gave the dying node at least one ticket before it was taken out.
    assert lost
    assert lost | stored == set(request_ids)
    assert dying_node.posted_request_ids() == lost
    assert served_request_ids(node) == stored
