"""The Helpline client against a real HTTP server on a loopback socket.

The server runs in a thread, answers from a script given by each test, and records
every request it receives. It is the only fake: everything from the client's
public API down to the socket is the real code.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from helpline.client import (
    AsyncHelpClient,
    HelpApiError,
    HelpAuthError,
    HelpClient,
    HelpClientError,
    HelpResponseError,
    HelpRetriesExhausted,
    TicketResult,
)
from helpline.client.cli import helpline_remote

API_KEY = "hk_live_7f3a9c0e5b1d4a2f8e6c"


@dataclass(frozen=True)
class Answer:
    """One scripted response; ``delay`` holds it back to provoke a client timeout."""

    status: int = 200
    envelope: dict[str, Any] | None = None
    raw_body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0

    def body(self) -> bytes:
        if self.raw_body is not None:
            return self.raw_body

        return json.dumps(self.envelope or {}).encode()


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def opened(ticket_id: int, **fields: Any) -> Answer:
    envelope = {"success": True, "ticketId": ticket_id, "error": False, **fields}
    return Answer(200, envelope)


def declined(reason: str, error_msg: str) -> Answer:
    envelope = {
        "success": False,
        "ticketId": None,
        "failureReason": reason,
        "error": True,
        "errorMsg": error_msg,
    }
    return Answer(200, envelope)


UNSCRIPTED = Answer(418, {"msg": "the test scripted no answer for this request"})


class _ScriptedHTTPServer(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ScriptedHandler)
        self.answers: deque[Answer] = deque()
        self.received: list[ReceivedRequest] = []
        self.lock = threading.Lock()

    def next_answer(self, request: ReceivedRequest) -> Answer:
        with self.lock:
            self.received.append(request)
            return self.answers.popleft() if self.answers else UNSCRIPTED


class _ScriptedHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ScriptedHTTPServer

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        request = ReceivedRequest(
            method="POST",
            path=self.path,
            headers={name.lower(): value for name, value in self.headers.items()},
            body=self.rfile.read(length),
        )
        answer = self.server.next_answer(request)

        time.sleep(answer.delay)
        # After a scripted delay the client has timed out and hung up, as intended.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._send(answer)

    def _send(self, answer: Answer) -> None:
        body = answer.body()
        self.send_response(answer.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep the test output for failures


class ScriptedServer:
    """Controls the loopback server: what it will answer, and what it was sent."""

    def __init__(self, http_server: _ScriptedHTTPServer) -> None:
        self._http_server = http_server

    @property
    def url(self) -> str:
        host, port = self._http_server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def received(self) -> list[ReceivedRequest]:
        return self._http_server.received

    def script(self, *answers: Answer) -> None:
        self._http_server.answers.extend(answers)

    def idempotency_keys(self) -> list[str]:
        return [request.headers["idempotency-key"] for request in self.received]


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    http_server = _ScriptedHTTPServer()
    # A short poll interval lets shutdown() return promptly after each test.
    serve = functools.partial(http_server.serve_forever, poll_interval=0.01)
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()

    yield ScriptedServer(http_server)

    http_server.shutdown()
    http_server.server_close()
    thread.join()


@pytest.fixture
def refusing_url() -> Iterator[str]:
    """A loopback address that refuses connections: bound, never listening."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{bound.getsockname()[1]}"


@pytest.fixture
def sleeps() -> list[float]:
    return []


ClientFactory = Callable[..., HelpClient]


@pytest.fixture
def make_client(server: ScriptedServer, sleeps: list[float]) -> Iterator[ClientFactory]:
    clients: list[HelpClient] = []

    def make(base_url: str | None = None, **options: Any) -> HelpClient:
        options.setdefault("timeout", 5.0)
        client = HelpClient(
            base_url or server.url, API_KEY, sleep=sleeps.append, **options
        )
        clients.append(client)
        return client

    yield make

    for client in clients:
        client.close()


@pytest.fixture
def client(make_client: ClientFactory) -> HelpClient:
    return make_client()


# The wire format


def test_request_carries_auth_headers_and_wire_field_names(
    server: ScriptedServer, client: HelpClient
) -> None:
    server.script(opened(41))

    client.open_ticket(
        subject="Camera offline",
        body="Lobby camera dropped off the network at 09:00.",
        collaborators=["ops@example.com", "it@example.com"],
        serial_numbers=["RCAM-1234"],
        product_type="camera",
        service_type="troubleshooting",
        console_access_granted=True,
    )

    [request] = server.received
    assert (request.method, request.path) == ("POST", "/api/help/ticket")
    assert request.headers["x-auth-apikey"] == API_KEY
    assert request.headers["x-auth-scheme"] == "api-token"
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {
        "subject": "Camera offline",
        "body": "Lobby camera dropped off the network at 09:00.",
        "collaborators": ["ops@example.com", "it@example.com"],
        "serialNumbers": ["RCAM-1234"],
        "productType": "camera",
        "serviceType": "troubleshooting",
        "consoleAccessGranted": True,
    }


def test_fields_left_none_are_not_sent(
    server: ScriptedServer, client: HelpClient
) -> None:
    server.script(opened(42))

    client.open_ticket(subject="Camera offline", console_access_granted=False)

    assert server.received[0].json() == {
        "subject": "Camera offline",
        "consoleAccessGranted": False,
    }


def test_single_string_for_a_list_field_is_refused(client: HelpClient) -> None:
    with pytest.raises(TypeError, match="collaborators"):
        client.open_ticket(subject="s", collaborators="ops@example.com")


def test_opened_ticket_is_returned_as_typed_result(
    server: ScriptedServer, client: HelpClient
) -> None:
    server.script(opened(12345, warningMsg="serial number RCAM-9 is unknown"))

    result = client.open_ticket(subject="Camera offline")

    assert result == TicketResult(
        success=True,
        ticket_id=12345,
        failure_reason=None,
        error=False,
        error_msg=None,
        warning_msg="serial number RCAM-9 is unknown",
        replayed=False,
    )


def test_domain_failure_is_returned_not_raised(
    server: ScriptedServer, client: HelpClient
) -> None:
    server.script(declined("Invalid email address", "'bob@' is not an address"))

    result = client.open_ticket(subject="s", collaborators=["bob@"])

    assert result.success is False
    assert result.ticket_id is None
    assert result.failure_reason == "Invalid email address"
    assert result.error_msg == "'bob@' is not an address"


@pytest.mark.parametrize(
    ("headers", "replayed"),
    [
        ({"Idempotent-Replayed": "true"}, True),
        ({"Idempotent-Replayed": "True"}, True),
        ({"Idempotent-Replayed": "false"}, False),
        ({}, False),
    ],
)
def test_replayed_is_read_from_the_response_header(
    server: ScriptedServer,
    client: HelpClient,
    headers: dict[str, str],
    replayed: bool,
) -> None:
    server.script(Answer(200, opened(7).envelope, headers=headers))

    assert client.open_ticket(subject="s").replayed is replayed


def test_success_status_with_a_body_that_is_not_the_envelope_raises(
    server: ScriptedServer, client: HelpClient
) -> None:
    server.script(Answer(200, raw_body=b"<html>Welcome to the proxy</html>"))

    with pytest.raises(HelpResponseError) as raised:
        client.open_ticket(subject="s")

    assert raised.value.status == 200


# Idempotency and retries


def test_retries_reuse_one_idempotency_key_and_next_call_draws_another(
    server: ScriptedServer, client: HelpClient
) -> None:
    server.script(
        Answer(503),
        Answer(429, headers={"Retry-After": "2"}),
        opened(1),
        opened(2),
    )

    first = client.open_ticket(subject="first")
    second = client.open_ticket(subject="second")

    keys = server.idempotency_keys()
    assert (first.ticket_id, second.ticket_id) == (1, 2)
    assert len(keys) == 4
    assert keys[0] == keys[1] == keys[2]
    assert keys[3] != keys[0]


def test_caller_idempotency_key_is_sent_unchanged_on_every_attempt(
    server: ScriptedServer, client: HelpClient
) -> None:
    server.script(Answer(502), opened(9))

    client.open_ticket(subject="s", idempotency_key="order-2024-0042")

    assert server.idempotency_keys() == ["order-2024-0042", "order-2024-0042"]


def test_retry_after_seconds_are_honoured(
    server: ScriptedServer, client: HelpClient, sleeps: list[float]
) -> None:
    server.script(Answer(503), Answer(429, headers={"Retry-After": "2"}), opened(3))

    client.open_ticket(subject="s")

    assert len(sleeps) == 2
    assert sleeps[1] >= 2


def test_retry_after_is_capped_by_backoff_max(
    server: ScriptedServer, make_client: ClientFactory, sleeps: list[float]
) -> None:
    server.script(Answer(429, headers={"Retry-After": "3600"}), opened(3))

    make_client(backoff_max=30.0).open_ticket(subject="s")

    assert sleeps == [30.0]


def test_backoff_ceiling_doubles_per_retry_up_to_backoff_max(
    server: ScriptedServer,
    make_client: ClientFactory,
    sleeps: list[float],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    drawn_from: list[tuple[float, float]] = []

    def highest(low: float, high: float) -> float:
        drawn_from.append((low, high))
        return high

    monkeypatch.setattr(random, "uniform", highest)
    server.script(Answer(500), Answer(500), Answer(500), Answer(500), opened(5))

    make_client(backoff_base=0.5, backoff_max=3.0).open_ticket(subject="s")

    assert drawn_from == [(0, 0.5), (0, 1.0), (0, 2.0), (0, 3.0)]
    assert sleeps == [0.5, 1.0, 2.0, 3.0]


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
def test_retryable_status_every_time_exhausts_the_attempts(
    server: ScriptedServer,
    make_client: ClientFactory,
    sleeps: list[float],
    status: int,
) -> None:
    server.script(*[Answer(status)] * 3)

    with pytest.raises(HelpRetriesExhausted) as raised:
        make_client(max_attempts=3).open_ticket(subject="s")

    assert len(server.received) == 3
    assert len(sleeps) == 2
    assert raised.value.attempts == 3
    assert raised.value.last_status == status
    assert raised.value.idempotency_key == server.idempotency_keys()[0]


def test_refused_connection_is_retried_then_exhausted(
    make_client: ClientFactory, refusing_url: str, sleeps: list[float]
) -> None:
    client = make_client(refusing_url, max_attempts=4)

    with pytest.raises(HelpRetriesExhausted) as raised:
        client.open_ticket(subject="s")

    assert len(sleeps) == 3
    assert raised.value.last_status is None
    assert isinstance(raised.value.__cause__, httpx.ConnectError)


def test_timed_out_attempt_is_retried_with_the_same_key(
    server: ScriptedServer, make_client: ClientFactory
) -> None:
    server.script(Answer(200, opened(6).envelope, delay=1.0), opened(6))

    result = make_client(timeout=0.2).open_ticket(subject="s")

    keys = server.idempotency_keys()
    assert result.ticket_id == 6
    assert len(keys) == 2
    assert keys[0] == keys[1]


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (400, HelpApiError),
        (401, HelpAuthError),
        (403, HelpAuthError),
        (404, HelpApiError),
        (405, HelpApiError),
        (409, HelpApiError),
        (413, HelpApiError),
        (415, HelpApiError),
        (307, HelpApiError),
    ],
)
def test_refusals_are_not_retried_and_raise_their_type(
    server: ScriptedServer,
    client: HelpClient,
    sleeps: list[float],
    status: int,
    error_type: type[HelpApiError],
) -> None:
    server.script(Answer(status, {"error": True, "errorMsg": "refused"}), opened(8))

    with pytest.raises(error_type) as raised:
        client.open_ticket(subject="s")

    assert type(raised.value) is error_type
    assert raised.value.status == status
    assert len(server.received) == 1
    assert sleeps == []


def test_bad_request_error_carries_the_server_explanation(
    server: ScriptedServer, client: HelpClient
) -> None:
    server.script(
        Answer(400, {"error": True, "errorMsg": "invalid JSON", "msg": "line 1"})
    )

    with pytest.raises(HelpApiError) as raised:
        client.open_ticket(subject="s")

    assert (raised.value.msg, raised.value.error_msg) == ("line 1", "invalid JSON")
    assert "line 1" in str(raised.value)


def test_async_client_retries_with_one_key(server: ScriptedServer) -> None:
    server.script(Answer(503), opened(77))
    sleeps: list[float] = []

    async def record_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async def open_one() -> TicketResult:
        async with AsyncHelpClient(
            server.url, API_KEY, timeout=5.0, sleep=record_sleep
        ) as client:
            return await client.open_ticket(subject="s")

    result = asyncio.run(open_one())

    keys = server.idempotency_keys()
    assert result.ticket_id == 77
    assert len(sleeps) == 1
    assert keys[0] == keys[1]


# Secrets and arguments


def test_api_key_is_absent_from_the_client_repr(client: HelpClient) -> None:
    assert API_KEY not in repr(client)
    assert "base_url" in repr(client)


@pytest.mark.parametrize(
    "answers",
    [
        [Answer(401, {"msg": "unknown key"})],
        [Answer(400, {"msg": "bad body"})],
        [Answer(503)] * 2,
    ],
)
def test_api_key_is_absent_from_error_messages(
    server: ScriptedServer, make_client: ClientFactory, answers: list[Answer]
) -> None:
    server.script(*answers)

    with pytest.raises(HelpClientError) as raised:
        make_client(max_attempts=2).open_ticket(subject="s")

    assert API_KEY not in str(raised.value)
    assert API_KEY not in repr(raised.value)


def test_api_key_is_absent_from_connection_failures(
    make_client: ClientFactory, refusing_url: str
) -> None:
    with pytest.raises(HelpRetriesExhausted) as raised:
        make_client(refusing_url, max_attempts=1).open_ticket(subject="s")

    assert API_KEY not in str(raised.value)
    assert API_KEY not in str(raised.value.__cause__)


def test_malformed_api_key_is_refused_without_echoing_it() -> None:
    malformed = "hk_live secret\n"

    with pytest.raises(ValueError, match="api_key") as raised:
        HelpClient("http://127.0.0.1:9", malformed)

    assert "secret" not in str(raised.value)


@pytest.mark.parametrize("base_url", ["ftp://help.example", "help.example", ""])
def test_base_url_without_http_scheme_is_refused(base_url: str) -> None:
    with pytest.raises(ValueError, match="base_url"):
        HelpClient(base_url, API_KEY)


# The helpline-remote command


def run_cli(server: ScriptedServer, *arguments: str) -> Result:
    runner = CliRunner()
    environment = {"HELPLINE_URL": server.url, "HELPLINE_API_KEY": API_KEY}
    return runner.invoke(helpline_remote, ["open-ticket", *arguments], env=environment)


def test_cli_prints_only_the_ticket_id_on_stdout(server: ScriptedServer) -> None:
    server.script(opened(314, warningMsg="serial number RCAM-9 is unknown"))

    outcome = run_cli(server, "--subject", "Camera offline")

    assert outcome.exit_code == 0
    assert outcome.stdout == "314\n"
    assert "RCAM-9 is unknown" in outcome.stderr


def test_cli_sends_options_under_wire_names(server: ScriptedServer) -> None:
    server.script(opened(1))

    run_cli(
        server,
        *("--subject", "s", "--body", "b"),
        *("--collaborator", "a@example.com", "--collaborator", "b@example.com"),
        *("--serial-number", "RCAM-1", "--no-console-access"),
        *("--product-type", "camera", "--idempotency-key", "cli-key-1"),
    )

    [request] = server.received
    assert request.headers["idempotency-key"] == "cli-key-1"
    assert request.headers["x-auth-apikey"] == API_KEY
    assert request.json() == {
        "subject": "s",
        "body": "b",
        "collaborators": ["a@example.com", "b@example.com"],
        "serialNumbers": ["RCAM-1"],
        "productType": "camera",
        "consoleAccessGranted": False,
    }


def test_cli_domain_failure_exits_1_with_reason_on_stderr(
    server: ScriptedServer,
) -> None:
    server.script(declined("Invalid email address", "'bob@' is not an address"))

    outcome = run_cli(server, "--subject", "s", "--collaborator", "bob@")

    assert outcome.exit_code == 1
    assert outcome.stdout == ""
    assert "Invalid email address: 'bob@' is not an address" in outcome.stderr


def test_cli_rejected_key_exits_2_with_a_hint(server: ScriptedServer) -> None:
    server.script(Answer(401, {"error": True, "errorMsg": "unknown API key"}))

    outcome = run_cli(server, "--subject", "s")

    assert outcome.exit_code == 2
    assert outcome.stdout == ""
    assert "HELPLINE_API_KEY" in outcome.stderr
    assert API_KEY not in outcome.stderr


def test_cli_unavailable_server_exits_2_naming_the_key_to_retry_with(
    server: ScriptedServer,
) -> None:
    server.script(Answer(503))

    outcome = run_cli(server, "--subject", "s", "--max-attempts", "1")

    assert outcome.exit_code == 2
    assert f"--idempotency-key {server.idempotency_keys()[0]}" in outcome.stderr
