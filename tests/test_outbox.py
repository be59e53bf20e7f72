"""Notifications through the outbox, end to end on each backend: a real SMTP
server (aiosmtpd) and a real webhook receiver, started here, get what the API and
the console cause; outages, dead dispatchers and failing receivers lose nothing."""

from __future__ import annotations

import asyncio
import email
import email.policy
import itertools
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from standardwebhooks import Webhook as Verifier
from standardwebhooks import WebhookVerificationError

from helpline.domain.agents import Agent
from helpline.domain.tickets import NewTicket, TicketStatus
from helpline.outbox.dispatcher import (
    DEPTH_FRESH_SECONDS,
    MAX_RETRY_DELAY_SECONDS,
    retry_delay,
)
from helpline.outbox.plan import plan_messages
from helpline.storage.console import ConsoleStore
from helpline.storage.outbox import OutboxMessage, OutboxStore
from helpline.storage.records import Created
from helpline.storage.store import open_store

from .conftest import (
    VALID_REQUEST,
    Credentials,
    LiveServer,
    StartServer,
    key_of,
    server_tls,
)
from .processes import ServerProcess, free_port
from .test_console_http import Browser, new_ticket

SENDER = "Acme Support <support@helpline.example>"
SUBMITTER = "ops@acme.example"  # the credentials fixture's key user
COLLABORATORS = ["it@acme.example", "lab@acme.example"]
FAST = {
    "mail_from": SENDER,
    "outbox_poll_seconds": 0.05,
    "outbox_retry_seconds": 0.2,
    "outbox_lease_seconds": 5.0,
    "webhook_timeout": 2.0,
}


# A real SMTP server


@dataclass
class Mailbox:
    """Keeps every mail it accepts; ``hold`` makes DATA wait until released."""

    received: list[EmailMessage] = field(default_factory=list)
    hold: threading.Event | None = None
    holding: threading.Event = field(default_factory=threading.Event)

    async def handle_DATA(  # noqa: N802 - the name aiosmtpd calls
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        if self.hold is not None:
            self.holding.set()
            while not self.hold.is_set():
                await asyncio.sleep(0.05)
        message = email.message_from_bytes(
            envelope.original_content or b"", policy=email.policy.default
        )
        assert isinstance(message, EmailMessage)
        self.received.append(message)
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.received if m["To"] == address]

    def wait_for(self, count: int, seconds: float = 20) -> list[EmailMessage]:
        wait_until(lambda: len(self.received) >= count, seconds)
        return list(self.received)


class SmtpServer:
    def __init__(self, port: int | None = None) -> None:
        self.mailbox = Mailbox()
        self.port = port or free_port()
        self.url = f"smtp://127.0.0.1:{self.port}?timeout=2"
        self._controller: Controller | None = None

    def start(self) -> None:
        self._controller = Controller(
            self.mailbox, hostname="127.0.0.1", port=self.port
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


# A real webhook receiver


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes


class Receiver:
    """Records every POST; answers 500 to the first ``failures`` of them. With
    ``tls``, it speaks https with that context's certificate."""

    def __init__(self, failures: int = 0, tls: ssl.SSLContext | None = None) -> None:
        self.failures = failures
        self.deliveries: list[Delivery] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.deliveries.append(
                    Delivery({k.lower(): v for k, v in self.headers.items()}, body)
                )
                failing = len(receiver.deliveries) <= receiver.failures
                self.send_response(500 if failing else 204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        scheme = "https" if tls else "http"
        port = self._server.server_address[1]
        self.url = f"{scheme}://127.0.0.1:{port}/hooks/helpline"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    opened = Receiver()
    yield opened
    opened.close()


# Helpers


@contextmanager
def signed_in(server: LiveServer) -> Iterator[Browser]:
    """A browser signed in as the ``ann`` fixture's agent."""
    browser = Browser(server)
    try:
        assert browser.sign_in().status_code == 303
        yield browser
    finally:
        browser.close()


def wait_until(condition: Callable[[], bool], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def helpline(database_url: str, *arguments: str, **environment: str) -> Any:
    """Run ``helpline ARGUMENTS`` against the database; the finished process."""
    variables = {**os.environ, "HELPLINE_DATABASE_URL": database_url, **environment}
    return subprocess.run(
        [sys.executable, "-m", "helpline", *arguments],
        capture_output=True,
        text=True,
        env=variables,
        timeout=60,
        check=False,
    )


@pytest.fixture
def outbox(database_url: str) -> Iterator[OutboxStore]:
    opened = OutboxStore(database_url)
    yield opened
    opened.close()


def messages(outbox: OutboxStore, ticket_id: int | None = None) -> list[OutboxMessage]:
    return outbox.list_messages(ticket_id=ticket_id, limit=1000)


def create(server: LiveServer, credentials: Credentials, **changes: Any) -> int:
    return new_ticket(
        server, credentials, **{"collaborators": COLLABORATORS, **changes}
    )


def add_webhook(database_url: str, url: str, *events: str) -> str:
    """The secret ``helpline webhooks add`` printed for a webhook to ``url``."""
    options = [item for event in events for item in ("--event", event)]
    done = helpline(
        database_url,
        *("webhooks", "add", "--org", "acme", "--url", url, *options),
        HELPLINE_WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8",
    )
    assert done.returncode == 0, done.stderr
    return str(done.stdout.strip())


# Mail


def test_a_new_ticket_is_acknowledged_to_the_submitter_and_each_collaborator(
    start_server: StartServer, credentials: Credentials, smtp: SmtpServer
) -> None:
    server = start_server(smtp_url=smtp.url, **FAST)
    ticket_id = create(server, credentials, subject="Printer on fire")

    received = smtp.mailbox.wait_for(3)

    assert sorted(m["To"] for m in received) == sorted([SUBMITTER, *COLLABORATORS])
    for mail in received:
        assert mail["From"] == SENDER
        assert mail["Subject"] == f"[Ticket #{ticket_id}] Printer on fire"
        assert mail.get_body(("plain",)) is not None
        assert mail.get_body(("html",)) is not None
    assert len({m["Message-ID"] for m in received}) == 3
    time.sleep(0.3)
    assert len(smtp.mailbox.received) == 3  # once each


def test_replies_and_solving_are_mailed_on_the_ticket_thread_but_notes_never(
    start_server: StartServer,
    credentials: Credentials,
    smtp: SmtpServer,
    store: ConsoleStore,
    ann: Agent,
) -> None:
    server = start_server(smtp_url=smtp.url, **FAST)
    ticket_id = create(server, credentials)
    smtp.mailbox.wait_for(3)
    now = int(time.time() * 1000)
    store.add_message(ticket_id, kind="note", body="SECRET", by=ann, now_ms=now)
    store.add_message(
        ticket_id, kind="reply", body="Unplug it, please.", by=ann, now_ms=now
    )
    store.set_status(ticket_id, TicketStatus.SOLVED, actor=ann.email, now_ms=now)

    smtp.mailbox.wait_for(9)
    time.sleep(0.3)

    assert len(smtp.mailbox.received) == 9
    for recipient in [SUBMITTER, *COLLABORATORS]:
        acknowledgement, reply, solved = smtp.mailbox.to(recipient)
        assert "Unplug it, please." in reply.get_body(("plain",)).get_content()
        assert reply["Subject"].startswith(f"[Ticket #{ticket_id}] Re: ")
        assert solved["Subject"].startswith(f"[Ticket #{ticket_id}] Solved: ")
        for follow_up in (reply, solved):
            assert follow_up["In-Reply-To"] == acknowledgement["Message-ID"]
            assert acknowledgement["Message-ID"] in follow_up["References"]
    assert all("SECRET" not in m.as_string() for m in smtp.mailbox.received)


def test_a_reply_sent_from_the_console_page_is_mailed(
    start_server: StartServer,
    credentials: Credentials,
    smtp: SmtpServer,
    ann: Agent,
) -> None:
    server = start_server(smtp_url=smtp.url, **FAST)
    ticket_id = create(server, credentials, collaborators=[])
    smtp.mailbox.wait_for(1)
    with signed_in(server) as browser:
        path = f"/console/tickets/{ticket_id}"
        assert browser.post(f"{path}/reply", body="Try a new cable.").status_code == 303
        assert browser.post(f"{path}/note", body="internal only").status_code == 303
        _, reply = smtp.mailbox.wait_for(2)
        page = browser.get(path).text

    assert reply["To"] == SUBMITTER
    assert "Try a new cable." in reply.get_body(("plain",)).get_content()
    assert "Ann" in reply.get_body(("plain",)).get_content()
    time.sleep(0.3)
    assert len(smtp.mailbox.received) == 2
    assert "Mails for this ticket: 2 sent, 0 waiting" in page


def test_mails_wait_while_the_smtp_server_is_down_and_all_arrive_after(
    start_server: StartServer, credentials: Credentials, outbox: OutboxStore
) -> None:
    smtp = SmtpServer()  # not started yet: nothing listens on its port
    server = start_server(
        smtp_url=smtp.url,
        outbox_max_attempts=100,
        **{**FAST, "outbox_poll_seconds": 0.1},
    )
    ticket_ids = [create(server, credentials, subject=f"Down {n}") for n in range(4)]

    wait_until(
        lambda: (
            all(m.attempts >= 2 and m.last_error for m in messages(outbox))
            and len(messages(outbox)) == 12
        )
    )
    time.sleep(DEPTH_FRESH_SECONDS)  # the figures are at most this old
    down = httpx.get(f"{server.url}/readyz").json()["outbox"]
    assert (down["pending"], down["retrying"], down["dead"]) == (12, 12, 0)
    smtp.start()
    try:
        received = smtp.mailbox.wait_for(12, seconds=30)
        time.sleep(0.5)
    finally:
        smtp.stop()

    assert len(smtp.mailbox.received) == 12
    subjects = sorted(m["Subject"] for m in received)
    assert subjects == sorted(
        f"[Ticket #{ticket_id}] Down {n}"
        for n, ticket_id in enumerate(ticket_ids)
        for _ in range(3)
    )
    wait_until(lambda: {m.state for m in messages(outbox)} == {"sent"})


def test_without_smtp_mails_wait_in_the_outbox_and_the_console_says_so(
    start_server: StartServer,
    credentials: Credentials,
    outbox: OutboxStore,
    ann: Agent,
) -> None:
    server = start_server(**FAST)
    ticket_id = create(server, credentials)
    wait_until(lambda: len(messages(outbox, ticket_id)) == 3)
    time.sleep(0.3)

    waiting = messages(outbox, ticket_id)
    assert {(m.channel, m.state, m.attempts) for m in waiting} == {
        ("email", "pending", 0)
    }
    ready = httpx.get(f"{server.url}/readyz").json()
    assert ready["outbox"]["email"] == "not configured"
    assert ready["outbox"]["pending"] >= 3

    with signed_in(server) as browser:
        page = browser.get(f"/console/tickets/{ticket_id}").text
    assert "Email is not configured" in page
    assert "3 for this ticket" in page


StartWorker = Callable[..., "subprocess.Popen[bytes]"]


@pytest.fixture
def start_worker(
    smtp: SmtpServer, database_url: str, blob_dir: str | None, tmp_path: Path
) -> Iterator[StartWorker]:
    """Start ``helpline worker`` processes that mail through ``smtp``; variables
    given as keywords add to theirs. Those still running are killed at the end."""
    started: list[subprocess.Popen[bytes]] = []

    def start(**variables: str) -> subprocess.Popen[bytes]:
        environment = {
            **os.environ,
            "HELPLINE_DATABASE_URL": database_url,
            "HELPLINE_SMTP_URL": smtp.url,
            "HELPLINE_MAIL_FROM": SENDER,
            "HELPLINE_OUTBOX_POLL_SECONDS": "0.05",
            **({"HELPLINE_BLOB_DIR": blob_dir} if blob_dir else {}),
            **variables,
        }
        with (tmp_path / f"worker-{len(started)}.log").open("wb") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "helpline", "worker"],
                env=environment,
                stdout=log,
                stderr=log,
            )
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.poll() is None:
            worker.kill()
            worker.wait(timeout=10)


def test_a_dispatcher_killed_mid_delivery_loses_nothing(
    start_server: StartServer,
    credentials: Credentials,
    smtp: SmtpServer,
    start_worker: StartWorker,
) -> None:
    server = start_server(dispatcher=False)
    ticket_ids = [create(server, credentials, subject=f"Kill {n}") for n in range(3)]
    smtp.mailbox.hold = threading.Event()
    short_lease = {
        "HELPLINE_OUTBOX_LEASE_SECONDS": "3",
        "HELPLINE_WEBHOOK_TIMEOUT": "1",
    }

    first = start_worker(**short_lease)
    assert smtp.mailbox.holding.wait(20), "the first worker never reached the server"
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    smtp.mailbox.hold.set()  # the server answers again; the worker is gone
    second = start_worker(**short_lease)
    smtp.mailbox.wait_for(9, seconds=30)
    second.send_signal(signal.SIGTERM)

    delivered = {(m["To"], m["Subject"]) for m in smtp.mailbox.received}
    assert delivered == {
        (recipient, f"[Ticket #{ticket_id}] Kill {n}")
        for n, ticket_id in enumerate(ticket_ids)
        for recipient in [SUBMITTER, *COLLABORATORS]
    }
    assert second.wait(timeout=20) == 0


def test_two_workers_never_send_one_message_twice(
    start_server: StartServer,
    credentials: Credentials,
    smtp: SmtpServer,
    start_worker: StartWorker,
) -> None:
    server = start_server(dispatcher=False)
    workers = [start_worker(), start_worker()]
    for n in range(20):
        create(server, credentials, subject=f"Pair {n}", collaborators=[])
    received = smtp.mailbox.wait_for(20, seconds=30)
    time.sleep(1)
    for worker in workers:
        worker.send_signal(signal.SIGTERM)

    assert len(smtp.mailbox.received) == 20
    assert len({m["Message-ID"] for m in received}) == 20
    assert [worker.wait(timeout=20) for worker in workers] == [0, 0]


# Webhooks


def test_a_webhook_is_signed_and_retried_after_it_answers_500(
    start_server: StartServer,
    credentials: Credentials,
    database_url: str,
    outbox: OutboxStore,
) -> None:
    receiver = Receiver(failures=2)
    try:
        secret = add_webhook(database_url, receiver.url)
        server = start_server(webhook_allowed_networks=("127.0.0.0/8",), **FAST)
        ticket_id = create(server, credentials)
        wait_until(lambda: len(receiver.deliveries) >= 3)
        time.sleep(0.5)
    finally:
        receiver.close()

    assert len(receiver.deliveries) == 3
    assert len({d.headers["webhook-id"] for d in receiver.deliveries}) == 1
    for delivery in receiver.deliveries:
        event = Verifier(secret).verify(delivery.body, delivery.headers)
        assert event["type"] == "ticket.created"
        assert event["data"]["ticketId"] == ticket_id
        assert event["data"]["ticket"]["subject"] == VALID_REQUEST["subject"]
    (sent,) = [m for m in messages(outbox, ticket_id) if m.channel == "webhook"]
    assert (sent.state, sent.attempts) == ("sent", 3)


def test_an_https_webhook_is_delivered_trusting_the_operators_authority(
    start_server: StartServer,
    credentials: Credentials,
    database_url: str,
    authority: trustme.CA,
    ca_file: str,
) -> None:
    receiver = Receiver(tls=server_tls(authority, "127.0.0.1"))
    try:
        secret = add_webhook(database_url, receiver.url)
        server = start_server(
            webhook_allowed_networks=("127.0.0.0/8",),
            tls_ca_file=ca_file,
            **FAST,
        )
        ticket_id = create(server, credentials)
        wait_until(lambda: len(receiver.deliveries) >= 1)
    finally:
        receiver.close()

    [delivery] = receiver.deliveries
    event = Verifier(secret).verify(delivery.body, delivery.headers)
    assert event["data"]["ticketId"] == ticket_id


def test_webhooks_get_the_events_they_asked_for(
    start_server: StartServer,
    credentials: Credentials,
    receiver: Receiver,
    database_url: str,
    store: ConsoleStore,
    ann: Agent,
) -> None:
    secret = add_webhook(database_url, receiver.url, "ticket.status_changed")
    server = start_server(webhook_allowed_networks=("127.0.0.0/8",), **FAST)
    ticket_id = create(server, credentials)
    now = int(time.time() * 1000)
    store.assign(ticket_id, ann.id, by=ann, now_ms=now)
    store.set_status(ticket_id, TicketStatus.PENDING, actor=ann.email, now_ms=now)

    wait_until(lambda: len(receiver.deliveries) >= 1)
    time.sleep(0.5)

    (delivery,) = receiver.deliveries
    event = Verifier(secret).verify(delivery.body, delivery.headers)
    assert event["type"] == "ticket.status_changed"
    assert event["data"]["change"]["before"] == {"status": "Open"}
    assert event["data"]["change"]["after"] == {"status": "Pending"}


def test_a_dead_webhook_message_is_listed_and_sent_again_on_retry(
    start_server: StartServer,
    credentials: Credentials,
    database_url: str,
) -> None:
    receiver = Receiver(failures=2)
    try:
        add_webhook(database_url, receiver.url)
        server = start_server(
            webhook_allowed_networks=("127.0.0.0/8",), outbox_max_attempts=2, **FAST
        )
        create(server, credentials)

        def dead() -> list[dict[str, Any]]:
            listed = helpline(database_url, "outbox", "list", "--dead", "--json")
            return list(json.loads(listed.stdout))

        wait_until(lambda: len(dead()) == 1)
        (message,) = dead()
        assert message["attempts"] == 2
        assert "HTTP 500" in message["lastError"]
        assert len(receiver.deliveries) == 2

        retried = helpline(database_url, "outbox", "retry", str(message["id"]))
        assert retried.returncode == 0, retried.stderr
        wait_until(lambda: len(receiver.deliveries) == 3)
        wait_until(lambda: dead() == [])
    finally:
        receiver.close()


def test_purge_deletes_only_messages_sent_before_the_cutoff(
    start_server: StartServer,
    credentials: Credentials,
    smtp: SmtpServer,
    database_url: str,
    outbox: OutboxStore,
) -> None:
    start_server(smtp_url=smtp.url, **FAST)
    create(start_server(dispatcher=False), credentials)
    smtp.mailbox.wait_for(3)
    wait_until(lambda: {m.state for m in messages(outbox)} == {"sent"})

    kept = helpline(database_url, "outbox", "purge", "--sent-days", "1")
    assert kept.returncode == 0, kept.stderr
    assert len(messages(outbox)) == 3
    purged = helpline(database_url, "outbox", "purge", "--sent-days", "0")
    assert "deleted 3 message(s)" in purged.stderr
    assert messages(outbox) == []


def test_webhooks_add_refuses_loopback_unless_allowed_and_prints_only_the_secret(
    database_url: str, receiver: Receiver, credentials: Credentials
) -> None:
    refused = helpline(
        database_url, "webhooks", "add", "--org", "acme", "--url", receiver.url
    )
    assert refused.returncode == 2
    assert "HELPLINE_WEBHOOK_ALLOWED_NETWORKS" in refused.stderr
    assert refused.stdout == ""

    secret = add_webhook(database_url, receiver.url)
    assert secret.startswith("whsec_")
    assert "\n" not in secret

    listed = json.loads(helpline(database_url, "webhooks", "list", "--json").stdout)
    assert [(hook["url"], hook["events"]) for hook in listed] == [(receiver.url, None)]
    assert secret not in json.dumps(listed)

    removed = helpline(database_url, "webhooks", "remove", str(listed[0]["id"]))
    assert removed.returncode == 0, removed.stderr
    assert json.loads(helpline(database_url, "webhooks", "list", "--json").stdout) == []


def test_a_rotated_secret_signs_beside_the_old_one_until_the_old_one_ends(
    start_server: StartServer,
    credentials: Credentials,
    database_url: str,
    outbox: OutboxStore,
    receiver: Receiver,
) -> None:
    first = add_webhook(database_url, receiver.url)
    (hook,) = outbox.list_webhooks()
    rotated = helpline(database_url, "webhooks", "rotate-secret", str(hook.id))
    assert rotated.returncode == 0, rotated.stderr
    second = rotated.stdout.strip()
    listed = json.loads(helpline(database_url, "webhooks", "list", "--json").stdout)

    server = start_server(webhook_allowed_networks=("127.0.0.0/8",), **FAST)
    create(server, credentials, subject="During the overlap")
    wait_until(lambda: len(receiver.deliveries) >= 1)
    ended = helpline(
        database_url, "webhooks", "rotate-secret", str(hook.id), "--keep-old", "0"
    )
    assert ended.returncode == 0, ended.stderr
    third = ended.stdout.strip()
    create(server, credentials, subject="After it")
    wait_until(lambda: len(receiver.deliveries) >= 2)

    assert second.startswith("whsec_")
    assert len({first, second, third}) == 3
    assert "the old one also signs deliveries until" in rotated.stderr
    assert "warning" not in rotated.stderr
    assert "warning: the secret replaced by the last rotation" in ended.stderr
    assert listed[0]["oldSecretUntil"] is not None
    assert not {first, second} & set(json.dumps(listed).split('"'))
    during, after = receiver.deliveries
    for secret in (first, second):  # either secret verifies during the overlap
        event = Verifier(secret).verify(during.body, during.headers)
        assert event["data"]["ticket"]["subject"] == "During the overlap"
    assert Verifier(third).verify(after.body, after.headers)
    for stale in (first, second):
        with pytest.raises(WebhookVerificationError):
            Verifier(stale).verify(after.body, after.headers)


def test_rotating_the_secret_of_an_unknown_webhook_changes_nothing(
    database_url: str,
    outbox: OutboxStore,
    receiver: Receiver,
    credentials: Credentials,
) -> None:
    add_webhook(database_url, receiver.url)
    (before,) = outbox.list_webhooks()

    refused = helpline(database_url, "webhooks", "rotate-secret", str(before.id + 1))

    assert refused.returncode == 1
    assert f"no webhook has the id {before.id + 1}" in refused.stderr
    assert refused.stdout == ""
    assert outbox.list_webhooks() == [before]


def test_removing_a_webhook_marks_what_it_had_to_receive_dead(
    start_server: StartServer,
    credentials: Credentials,
    database_url: str,
    outbox: OutboxStore,
) -> None:
    add_webhook(database_url, "http://127.0.0.1:9/unreachable")
    server = start_server(
        webhook_allowed_networks=("127.0.0.0/8",),
        **{**FAST, "outbox_retry_seconds": 60.0},
    )
    ticket_id = create(server, credentials)
    wait_until(
        lambda: any(
            m.channel == "webhook" and m.attempts == 1 and m.last_error
            for m in messages(outbox, ticket_id)
        )
    )
    (hook,) = outbox.list_webhooks()

    assert outbox.remove_webhook(hook.id, now_ms=int(time.time() * 1000)) == 1
    (message,) = [m for m in messages(outbox, ticket_id) if m.channel == "webhook"]
    assert message.state == "dead"
    assert message.last_error == f"webhook {hook.id} was removed"


# Retries and readiness


def test_retries_start_within_30_seconds_and_spread_over_hours() -> None:
    delays = [retry_delay(attempt, 15.0) for attempt in range(1, 13)]

    assert delays[0] <= 30
    growing = delays[:9]
    assert all(b > a for a, b in itertools.pairwise(growing))
    assert sum(delays) > 6 * 3600
    assert max(delays) <= MAX_RETRY_DELAY_SECONDS


def test_readiness_shows_the_outbox(
    start_server: StartServer, smtp: SmtpServer
) -> None:
    server = start_server(smtp_url=smtp.url, **FAST)

    outbox = httpx.get(f"{server.url}/readyz").json()["outbox"]

    assert outbox["email"] == "configured"
    assert outbox["dispatcher"] in ("running", "standby")
    assert {"pending", "retrying", "dead"} <= outbox.keys()


def test_serve_refuses_smtp_without_a_sender(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="HELPLINE_MAIL_FROM"):
        ServerProcess(
            tmp_path,
            "--database",
            f"sqlite:///{tmp_path / 'h.db'}",
            environment={"HELPLINE_SMTP_URL": "smtp://127.0.0.1:2525"},
        )


@pytest.mark.parametrize(
    ("content", "problem"),
    [(None, "cannot be read"), ("not a certificate\n", "holds no certificate")],
)
def test_serve_refuses_a_tls_ca_file_it_cannot_use(
    tmp_path: Path, content: str | None, problem: str
) -> None:
    ca_file = tmp_path / "ca.pem"
    if content is not None:
        ca_file.write_text(content)

    with pytest.raises(RuntimeError, match=f"HELPLINE_TLS_CA_FILE .*{problem}"):
        ServerProcess(
            tmp_path,
            "--database",
            f"sqlite:///{tmp_path / 'h.db'}",
            environment={"HELPLINE_TLS_CA_FILE": str(ca_file)},
        )


# Messages planned with the ticket


def normalized(message: OutboxMessage) -> tuple[Any, ...]:
    """A message without what differs between two copies of one ticket: its ids."""
    payload = json.loads(message.payload)
    if message.channel == "webhook":
        payload["data"].update(eventId=0, ticketId=0)
        payload["data"]["ticket"]["id"] = 0
    else:
        payload["ticket_id"] = 0
    return (
        message.channel,
        message.event_type,
        message.destination,
        message.webhook_id,
        payload,
        message.state,
        message.attempts,
        message.created_at_ms,
    )


def test_the_writer_plans_a_new_ticket_s_messages_as_a_dispatcher_would(
    database_url: str, credentials: Credentials, outbox: OutboxStore
) -> None:
    """The API's writer writes a new ticket's messages in its transaction; a
    store without a planner leaves the event to a dispatcher's fan-out. Both make
    the same messages of the same ticket."""
    every = outbox.add_webhook(
        "acme", url="https://hooks.example/all", secret="s1", events=None, now_ms=1
    )
    outbox.add_webhook(
        "acme",
        url="https://hooks.example/replies",
        secret="s2",
        events=["ticket.replied"],
        now_ms=1,
    )
    organization_id, key_id = key_of(database_url, credentials)
    made = [
        NewTicket(
            organization_id=organization_id,
            api_key_id=key_id,
            submitter_email="ops@acme.example",
            subject=f"Camera {number} offline",
            body="Since the update" if number % 2 else None,
            collaborators=None if number == 0 else ("a@acme.example", "B@acme.example"),
            serial_numbers=("RCAMX1",),
            product_type="Camera",
            service_type=None,
            console_access_granted=True,
            console_access_expires_at_ms=None,
            created_at_ms=1_700_000_000_000 + number,
            status=TicketStatus.OPEN if number < 3 else TicketStatus.PENDING,
        )
        for number in range(4)
    ]

    async def create_all(planner: Any) -> list[int]:
        store = open_store(database_url, planner=planner)
        await store.start()
        try:
            created = [
                await store.create_ticket(ticket, claim=None, warning_msg=None)
                for ticket in made
            ]
        finally:
            await store.close()
        ids = []
        for outcome in created:
            assert isinstance(outcome, Created)
            assert outcome.ticket_id is not None
            ids.append(outcome.ticket_id)
        return ids

    planned = asyncio.run(create_all(plan_messages))
    # Mails: the submitter of each, and two collaborators of three; one webhook.
    assert outbox.depth().pending == (1 + 3 * 3) + 4
    assert outbox.work_waiting(channels=["webhook"], now_ms=0)[0] == 0  # no event
    fanned = asyncio.run(create_all(None))
    assert outbox.fan_out(plan_messages, limit=100, now_ms=1_700_000_000_000) == 4
    # The dispatcher stamps its messages with its own time, the writer with the
    # ticket's: only the time a message was first due may differ.
    for first, second in zip(planned, fanned, strict=True):
        ours = [normalized(message)[:-1] for message in messages(outbox, first)]
        theirs = [normalized(message)[:-1] for message in messages(outbox, second)]
        assert ours == theirs
        assert {row[3] for row in ours if row[0] == "webhook"} == {every.id}
