"""``helpline serve`` as operators run it: a process on a socket, killed for real."""

from __future__ import annotations

import concurrent.futures
import gc
import json
import re
import signal
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from helpline.cli import cli
from helpline.cli.serve import tune_garbage_collection
from helpline.storage.admin import AdminStore

from .conftest import VALID_REQUEST
from .processes import ServerProcess


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


def bootstrap_token(output: str) -> str:
    tokens = re.findall(r"hlk_[A-Za-z0-9_-]+", output)
    assert len(tokens) == 1, output
    return str(tokens[0])


def read_only_key(workdir: Path) -> str:
    """A new key of the default organization that may only read tickets."""
    created = CliRunner().invoke(
        cli,
        [
            *("keys", "create", "--org", "default", "--user", "reader@example.com"),
            *("--permission", "READ_TICKETS"),
            *("--database", f"sqlite:///{workdir / 'helpline.db'}"),
        ],
    )
    assert created.exit_code == 0, created.output
    return bootstrap_token(created.stdout)


def test_first_start_creates_default_organization_and_prints_key_once(
    workdir: Path,
) -> None:
    first = ServerProcess(workdir)
    try:
        token = bootstrap_token(first.stdout)
        response = httpx.post(
            f"{first.url}/api/help/ticket",
            json=VALID_REQUEST,
            headers={"x-auth-apikey": token, "x-auth-scheme": "api-token"},
        )
    finally:
        first.stop()

    second = ServerProcess(workdir)
    second.stop()

    assert (workdir / "helpline.db").exists()
    assert response.json()["success"] is True
    assert "First start" in first.stdout
    assert "hlk_" not in second.stdout
    admin = AdminStore(f"sqlite:///{workdir / 'helpline.db'}")
    assert [org.name for org in admin.list_organizations()] == ["default"]
    admin.close()


def test_one_log_line_per_request_without_secrets_or_ticket_text(
    workdir: Path,
) -> None:
    server = ServerProcess(workdir)
    token = bootstrap_token(server.stdout)
    headers = {
        "x-auth-apikey": token,
        "x-auth-scheme": "api-token",
        "x-request-id": "req-42",
    }
    httpx.post(f"{server.url}/api/help/ticket", json=VALID_REQUEST, headers=headers)
    reader = read_only_key(workdir)
    refused = httpx.post(
        f"{server.url}/api/help/ticket",
        json=VALID_REQUEST,
        headers={**headers, "x-auth-apikey": reader, "x-request-id": "req-43"},
    )
    server.stop()

    lines = [
        json.loads(line) for line in server.stderr.splitlines() if line.startswith("{")
    ]
    requests = [line for line in lines if line.get("event") == "request"]
    [logged] = [line for line in requests if line["request_id"] == "req-42"]
    assert logged["method"] == "POST"
    assert logged["path"] == "/api/help/ticket"
    assert logged["status"] == 200
    assert logged["organization"] == "default"
    assert logged["key_prefix"] == token.split("_")[1]
    assert isinstance(logged["duration_ms"], float)
    # A key refused for what it may do is still named, for the operator.
    assert refused.status_code == 403
    [forbidden] = [line for line in requests if line["request_id"] == "req-43"]
    assert forbidden["status"] == 403
    assert forbidden["organization"] == "default"
    assert forbidden["key_prefix"] == reader.split("_")[1]
    assert token not in server.stderr
    assert reader not in server.stderr
    assert VALID_REQUEST["subject"] not in server.stderr
    assert VALID_REQUEST["body"] not in server.stderr


def test_acknowledged_tickets_survive_a_kill_mid_load(workdir: Path) -> None:
    server = ServerProcess(workdir)
    token = bootstrap_token(server.stdout)
    headers = {"x-auth-apikey": token, "x-auth-scheme": "api-token"}
    acknowledged: list[int] = []
    client = httpx.Client(limits=httpx.Limits(max_connections=16))

    def create(number: int) -> None:
        try:
            response = client.post(
                f"{server.url}/api/help/ticket",
                json={**VALID_REQUEST, "subject": f"Durable {number}"},
                headers=headers,
                timeout=2,
            )
        except httpx.TransportError:
            return  # killed before answering: not acknowledged, may be absent
        if response.status_code == 200 and response.json()["success"]:
            acknowledged.append(response.json()["ticketId"])

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        for number in range(600):
            pool.submit(create, number)
        # Kill while requests are in flight, once a good share was acknowledged.
        deadline = time.monotonic() + 30
        while len(acknowledged) < 100 and time.monotonic() < deadline:
            time.sleep(0.01)
        server.stop(signal.SIGKILL)
    client.close()

    admin = AdminStore(f"sqlite:///{workdir / 'helpline.db'}")
    stored = {ticket.id for ticket in admin.list_tickets(limit=10_000)}
    admin.close()
    assert len(acknowledged) >= 100, "too few requests were acknowledged"
    assert len(acknowledged) < 600, "the kill came after the load had ended"
    assert set(acknowledged) <= stored


def test_serving_freezes_what_start_up_built_and_collects_young_objects_rarer() -> None:
    before = gc.get_threshold()
    try:
        tune_garbage_collection()

        assert gc.get_freeze_count() > 1000  # modules, tables, the app
        assert gc.get_threshold()[0] > before[0]
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
