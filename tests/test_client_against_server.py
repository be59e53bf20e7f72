"""The standalone client and helpline-remote against a real Helpline server."""

from __future__ import annotations

import subprocess
import sys

from helpline.client import HelpClient
from helpline.storage.admin import AdminStore

from .conftest import Credentials, LiveServer


def test_client_opens_a_ticket_and_a_retry_replays_it(
    server: LiveServer, credentials: Credentials, admin: AdminStore
) -> None:
    with HelpClient(server.url, credentials.token) as client:
        first = client.open_ticket(
            subject="Camera offline",
            collaborators=["it@acme.example"],
            serial_numbers=["rcam-1234"],
            idempotency_key="client-retry-1",
        )
        again = client.open_ticket(
            subject="Camera offline",
            collaborators=["it@acme.example"],
            serial_numbers=["rcam-1234"],
            idempotency_key="client-retry-1",
        )

    assert first.success is True
    assert first.replayed is False
    assert again.ticket_id == first.ticket_id
    assert again.replayed is True
    assert first.warning_msg == "serialNumbers[0]: normalized to RCAM-1234"
    assert admin.count_tickets() == 1


def test_client_returns_domain_failures_as_results(
    server: LiveServer, credentials: Credentials
) -> None:
    with HelpClient(server.url, credentials.token) as client:
        result = client.open_ticket(subject="x", collaborators=["nobody"])

    assert result.success is False
    assert result.failure_reason == "Invalid email address"


def remote(
    server: LiveServer, credentials: Credentials, *arguments: str
) -> subprocess.CompletedProcess[str]:
    """Run helpline-remote in a clean environment, as a user's shell would."""
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "from helpline.client.cli import main; main()",
            *arguments,
        ],
        env={
            "HELPLINE_URL": server.url,
            "HELPLINE_API_KEY": credentials.token,
            "PATH": "/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_helpline_remote_prints_the_ticket_id(
    server: LiveServer, credentials: Credentials, admin: AdminStore
) -> None:
    completed = remote(
        server, credentials, "open-ticket", "--subject", "From the command line"
    )

    assert completed.returncode == 0, completed.stderr
    ticket = admin.get_ticket(int(completed.stdout.strip()))
    assert ticket.subject == "From the command line"


def test_helpline_remote_exits_1_with_the_failure_reason(
    server: LiveServer, credentials: Credentials
) -> None:
    completed = remote(
        server, credentials, "open-ticket", "--subject", "x", "--serial-number", "??"
    )

    assert completed.returncode == 1
    assert completed.stdout == ""
    assert "Invalid serial number" in completed.stderr
