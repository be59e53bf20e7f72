"""Webhook signing, the destination check and delivery, against a real HTTP receiver
on the loopback interface. Signatures are verified by the Standard Webhooks
reference library and by a check written here from the specification."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.utils
import hashlib
import hmac
import http.server
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import trustme
from standardwebhooks import Webhook, WebhookVerificationError

from helpline.outbox.webhooks import (
    ALLOWED_NETWORKS_VARIABLE,
    EVENTS,
    MAX_RESPONSE_BYTES,
    DeliveryFailed,
    DestinationRefused,
    check_destination,
    check_url,
    deliver,
    new_secret,
    parse_allowed_networks,
    sign,
    signed_headers,
    webhook_client,
)

from .conftest import server_tls

LOOPBACK = parse_allowed_networks("127.0.0.0/8")
BODY = b'{"type": "ticket.created", "data": {"ticket": 1042}}'

# The vector in the Standard Webhooks reference library's own tests.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_MESSAGE_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


# --- The receiver ---------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A webhook receiver whose answer depends on the path it is posted to."""

    base_url: str
    requests: list[Received] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    @property
    def paths(self) -> list[str]:
        return [each.path for each in self.requests]


class _ReceiverHandler(http.server.BaseHTTPRequestHandler):
    """/hook answers 200; /status/N answers N; /redirect a 302; /busy a 429 with
    Retry-After: 7; /unavailable-until/T a 503 retrying at epoch T; /slow waits
    until the test releases it."""

    receiver: Receiver

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        self.receiver.requests.append(
            Received(
                path=self.path,
                headers={key.lower(): value for key, value in self.headers.items()},
                body=self.rfile.read(length),
            )
        )
        # A client that gave up first (the timeout test) finds the socket closed.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._answer()

    def _answer(self) -> None:
        parts = self.path.strip("/").split("/")
        if parts[0] == "status":
            self._send(int(parts[1]))
        elif parts[0] == "redirect":
            self._send(302, {"Location": "/redirect-target"})
        elif parts[0] == "busy":
            self._send(429, {"Retry-After": "7"})
        elif parts[0] == "unavailable-until":
            until = email.utils.formatdate(int(parts[1]), usegmt=True)
            self._send(503, {"Retry-After": until})
        elif parts[0] == "slow":
            self.receiver.release.wait(timeout=10)
            self._send(200)
        else:
            self._send(200)

    def _send(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep the test output clean


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from _serving(tls=None)


@pytest.fixture
def https_receiver(authority: trustme.CA) -> Iterator[Receiver]:
    """A receiver on 127.0.0.1 speaking https, with a certificate ``authority``
    issued for the name hooks.example."""
    yield from _serving(tls=server_tls(authority, "hooks.example"))


def _serving(*, tls: ssl.SSLContext | None) -> Iterator[Receiver]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ReceiverHandler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    port = server.server_address[1]
    state = Receiver(base_url=f"http{'s' if tls else ''}://127.0.0.1:{port}")
    server.RequestHandlerClass = type(
        "BoundHandler", (_ReceiverHandler,), {"receiver": state}
    )
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield state
    state.release.set()
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _deliver(url: str, *, secret: str = SPEC_SECRET, **options: Any) -> int:
    """One delivery through a fresh client, as the dispatcher would make it."""

    async def run() -> int:
        async with httpx.AsyncClient() as client:
            return await deliver(
                client,
                url=url,
                secret=secret,
                message_id="msg_1",
                body=BODY,
                **{"allowed": LOOPBACK, **options},
            )

    return asyncio.run(run())


def _verify_by_hand(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """The receiver's check, written from the specification's description."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    content = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode()
    digest = hmac.new(key, content + body, hashlib.sha256).digest()
    expected = "v1," + base64.b64encode(digest).decode()
    offered = headers["webhook-signature"].split(" ")
    return any(hmac.compare_digest(expected, each) for each in offered)


# --- Delivery to a real receiver ------------------------------------------------------


def test_delivery_arrives_signed_and_both_verifiers_accept_it(
    receiver: Receiver,
) -> None:
    secret = new_secret()

    status = _deliver(f"{receiver.base_url}/hook", secret=secret)

    assert status == 200
    [request] = receiver.requests
    assert request.body == BODY
    assert request.headers["webhook-id"] == "msg_1"
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 5
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "Helpline-Webhooks/1"
    assert Webhook(secret).verify(request.body, request.headers) == {
        "type": "ticket.created",
        "data": {"ticket": 1042},
    }
    assert _verify_by_hand(secret, request.headers, request.body)


def test_delivery_signs_with_the_timestamp_of_the_given_clock(
    receiver: Receiver,
) -> None:
    _deliver(f"{receiver.base_url}/hook", now=lambda: 1_700_000_000.75)

    [request] = receiver.requests
    assert request.headers["webhook-timestamp"] == "1700000000"
    assert _verify_by_hand(SPEC_SECRET, request.headers, request.body)


@pytest.mark.parametrize("status", [200, 202, 204])
def test_any_2xx_answer_is_success(receiver: Receiver, status: int) -> None:
    assert _deliver(f"{receiver.base_url}/status/{status}") == status


@pytest.mark.parametrize("status", [400, 404, 500, 503])
def test_error_status_is_a_retryable_failure(receiver: Receiver, status: int) -> None:
    url = f"{receiver.base_url}/status/{status}"

    with pytest.raises(DeliveryFailed) as caught:
        _deliver(url)

    assert caught.value.retryable
    assert caught.value.status == status
    assert str(caught.value) == f"HTTP {status} from {url}"


def test_gone_is_not_retryable(receiver: Receiver) -> None:
    with pytest.raises(DeliveryFailed) as caught:
        _deliver(f"{receiver.base_url}/status/410")

    assert not caught.value.retryable
    assert caught.value.status == 410


def test_redirect_is_not_followed_and_fails_retryable(receiver: Receiver) -> None:
    with pytest.raises(DeliveryFailed) as caught:
        _deliver(f"{receiver.base_url}/redirect")

    assert caught.value.retryable
    assert caught.value.status == 302
    assert "/redirect-target" in str(caught.value)
    assert receiver.paths == ["/redirect"]


def test_too_many_requests_carries_retry_after_seconds(receiver: Receiver) -> None:
    with pytest.raises(DeliveryFailed) as caught:
        _deliver(f"{receiver.base_url}/busy")

    assert caught.value.status == 429
    assert caught.value.retryable
    assert caught.value.retry_after == 7.0


def test_retry_after_as_an_http_date_becomes_seconds_from_now(
    receiver: Receiver,
) -> None:
    now = 1_700_000_000.0

    with pytest.raises(DeliveryFailed) as caught:
        _deliver(f"{receiver.base_url}/unavailable-until/1700000030", now=lambda: now)

    assert caught.value.status == 503
    assert caught.value.retry_after == 30.0


def test_error_message_leaves_out_the_query(receiver: Receiver) -> None:
    with pytest.raises(DeliveryFailed) as caught:
        _deliver(f"{receiver.base_url}/status/500?token=receiver-secret")

    assert "receiver-secret" not in str(caught.value)


def test_slow_receiver_times_out_within_the_budget(receiver: Receiver) -> None:
    started = time.monotonic()

    with pytest.raises(DeliveryFailed) as caught:
        _deliver(f"{receiver.base_url}/slow", timeout=0.5)

    assert time.monotonic() - started < 2.0
    assert caught.value.retryable
    assert caught.value.status is None
    assert str(caught.value) == "timed out after 0.5 s"


def test_closed_port_is_a_retryable_failure() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(DeliveryFailed) as caught:
        _deliver(f"http://127.0.0.1:{port}/hook")

    assert caught.value.retryable
    assert caught.value.status is None
    assert "could not connect" in str(caught.value)


class _EndlessBody(httpx.AsyncByteStream):
    """An answer that never ends, counting how much of it was asked for."""

    def __init__(self) -> None:
        self.chunks_read = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            self.chunks_read += 1
            yield b"x" * 1024


def test_huge_answer_is_read_only_up_to_the_limit() -> None:
    answer = _EndlessBody()
    transport = httpx.MockTransport(lambda request: httpx.Response(200, stream=answer))

    async def run() -> int:
        async with httpx.AsyncClient(transport=transport) as client:
            return await deliver(
                client,
                url="http://127.0.0.1/hook",
                secret=SPEC_SECRET,
                message_id="msg_1",
                body=BODY,
                allowed=LOOPBACK,
            )

    assert asyncio.run(run()) == 200
    assert answer.chunks_read <= MAX_RESPONSE_BYTES // 1024 + 1


# --- The dispatcher's client connects only to the addresses it checked ---------------


def _post_through_webhook_client(
    url: str,
    *,
    allowed: Any,
    names: dict[str, str] | None = None,
    ca_file: str | None = None,
) -> tuple[httpx.Response, list[str]]:
    """A POST through ``webhook_client``; with ``names``, the host names it
    resolves come from there (name → address) instead of the system resolver.
    Returns the answer and the names resolved."""
    resolved: list[str] = []

    async def resolve(host: str, port: int) -> list[Any]:
        resolved.append(host)
        return [ipaddress.ip_address((names or {})[host])]

    async def run() -> httpx.Response:
        chosen = resolve if names is not None else None
        async with webhook_client(allowed, ca_file=ca_file, resolve=chosen) as client:
            return await client.post(url, content=BODY)

    return asyncio.run(run()), resolved


def test_webhook_client_refuses_to_connect_to_an_address_not_allowed(
    receiver: Receiver,
) -> None:
    with pytest.raises(DestinationRefused) as caught:
        _post_through_webhook_client(receiver.base_url + "/hook", allowed=())

    assert ALLOWED_NETWORKS_VARIABLE in str(caught.value)
    assert receiver.requests == []


def test_webhook_client_connects_to_the_address_it_checked_and_names_the_host(
    receiver: Receiver,
) -> None:
    # hooks.example has no DNS record anywhere: a request that arrives was sent to
    # the address checked at connection time, not to one resolved again later.
    port = receiver.base_url.rsplit(":", 1)[1]
    url = f"http://hooks.example:{port}/hook"
    names = {"hooks.example": "127.0.0.1"}

    with pytest.raises(DestinationRefused) as caught:
        _post_through_webhook_client(url, allowed=(), names=names)
    response, resolved = _post_through_webhook_client(
        url, allowed=LOOPBACK, names=names
    )

    assert "hooks.example (127.0.0.1) is a loopback address" in str(caught.value)
    assert response.status_code == 200
    assert resolved == ["hooks.example"]
    [request] = receiver.requests
    assert request.headers["host"] == f"hooks.example:{port}"
    assert request.body == BODY


def test_https_webhook_is_checked_against_the_operators_authority_by_its_name(
    https_receiver: Receiver, ca_file: str
) -> None:
    # The connection goes to the checked address, 127.0.0.1, and TLS still
    # names the URL's host: the certificate is for hooks.example, not the address.
    port = https_receiver.base_url.rsplit(":", 1)[1]
    names = {"hooks.example": "127.0.0.1", "other.example": "127.0.0.1"}

    def post(host: str, *, trusted: bool) -> httpx.Response:
        response, _ = _post_through_webhook_client(
            f"https://{host}:{port}/hook",
            allowed=LOOPBACK,
            names=names,
            ca_file=ca_file if trusted else None,
        )
        return response

    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        post("hooks.example", trusted=False)  # no public authority issued it
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        post("other.example", trusted=True)  # a certificate for another name
    answered = post("hooks.example", trusted=True)

    assert answered.status_code == 200
    [request] = https_receiver.requests
    assert request.headers["host"] == f"hooks.example:{port}"


# --- Destinations refused before any request ------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        "http://127.0.0.1:{port}/hook",
        "http://localhost:{port}/hook",
        "http://[::1]:{port}/hook",
        "http://[::ffff:127.0.0.1]:{port}/hook",
        "http://10.1.2.3/hook",
        "http://192.168.1.20/hook",
        "http://172.16.0.5/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/hook",
        "http://0.0.0.0:{port}/hook",
        "http://224.0.0.1/hook",
        "http://[fc00::1]/hook",
        "http://[fe80::1]/hook",
        "http://[64:ff9b::a00:1]/hook",
    ],
)
def test_non_public_destination_is_refused_before_any_request(
    receiver: Receiver, template: str
) -> None:
    port = receiver.base_url.rsplit(":", 1)[1]

    with pytest.raises(DestinationRefused) as caught:
        _deliver(template.format(port=port), allowed=())

    assert ALLOWED_NETWORKS_VARIABLE in str(caught.value)
    assert receiver.requests == []


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://10.1.2.3/hook", "10.0.0.0/8"),
        ("http://192.168.1.20/hook", "192.168.1.20"),
        ("http://[::ffff:127.0.0.1]/hook", "127.0.0.0/8"),
        ("https://[fd00::7]/hook", "fd00::/8"),
    ],
)
def test_allowed_range_lets_a_private_destination_pass(url: str, allowed: str) -> None:
    asyncio.run(check_destination(url, parse_allowed_networks(allowed)))


def test_public_address_passes_without_an_allowance() -> None:
    asyncio.run(check_destination("https://93.184.215.14/hook", ()))


def test_allowance_for_one_range_does_not_open_another() -> None:
    with pytest.raises(DestinationRefused):
        asyncio.run(
            check_destination("http://10.1.2.3/", parse_allowed_networks("10.9.0.0/16"))
        )


def test_name_that_does_not_resolve_is_a_retryable_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The system resolver is the network boundary; answering "no such name" here
    # keeps the test independent of the machine's DNS.
    async def no_such_name(*args: Any, **kwargs: Any) -> list[Any]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    async def run() -> None:
        monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", no_such_name)
        await check_destination("https://hooks.example.com/in", ())

    with pytest.raises(DeliveryFailed) as caught:
        asyncio.run(run())

    assert caught.value.retryable
    assert "hooks.example.com" in str(caught.value)


# --- Signatures -----------------------------------------------------------------------


def test_sign_matches_the_specification_vector() -> None:
    signature = sign(SPEC_SECRET, SPEC_MESSAGE_ID, SPEC_TIMESTAMP, SPEC_BODY)

    assert signature == SPEC_SIGNATURE


def test_new_secret_round_trips_through_the_reference_library() -> None:
    secret = new_secret()
    when = datetime.fromtimestamp(SPEC_TIMESTAMP, tz=UTC)

    ours = sign(secret, "msg_2", SPEC_TIMESTAMP, BODY)

    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert ours == Webhook(secret).sign("msg_2", when, BODY.decode())


def test_new_secrets_differ() -> None:
    assert new_secret() != new_secret()


@pytest.mark.parametrize(
    ("body", "timestamp_shift"),
    [(BODY.replace(b"1042", b"1043"), 0), (BODY, -1)],
    ids=["tampered body", "tampered timestamp"],
)
def test_tampered_message_fails_verification(body: bytes, timestamp_shift: int) -> None:
    timestamp = int(time.time())
    headers = signed_headers(SPEC_SECRET, "msg_3", timestamp, BODY)
    headers["webhook-timestamp"] = str(timestamp + timestamp_shift)

    with pytest.raises(WebhookVerificationError):
        Webhook(SPEC_SECRET).verify(body, headers)
    assert not _verify_by_hand(SPEC_SECRET, headers, body)


def test_signature_among_several_is_still_found() -> None:
    timestamp = int(time.time())
    headers = signed_headers(SPEC_SECRET, "msg_4", timestamp, BODY)
    rotated = sign(new_secret(), "msg_4", timestamp, BODY)
    headers["webhook-signature"] = f"{rotated} {headers['webhook-signature']}"

    assert Webhook(SPEC_SECRET).verify(BODY, headers)
    assert _verify_by_hand(SPEC_SECRET, headers, BODY)


@pytest.mark.parametrize(
    "secret",
    ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_", "whsec_not base64!", "whsec_abc"],
)
def test_malformed_secret_is_refused_without_being_echoed(secret: str) -> None:
    with pytest.raises(ValueError, match="whsec_") as caught:
        sign(secret, "msg_5", SPEC_TIMESTAMP, BODY)

    remainder = secret.removeprefix("whsec_")
    assert not remainder or remainder not in str(caught.value)


def test_events_are_the_four_ticket_events() -> None:
    assert EVENTS == (
        "ticket.created",
        "ticket.updated",
        "ticket.status_changed",
        "ticket.replied",
    )


# --- URL syntax and the allowance variable --------------------------------------------


def test_check_url_lowercases_scheme_and_host_only() -> None:
    url = check_url("HTTPS://Hooks.Example.COM:8443/In/Ticket?Key=V")

    assert url == "https://hooks.example.com:8443/In/Ticket?Key=V"


def test_check_url_keeps_an_ipv6_host_in_brackets() -> None:
    assert check_url("http://[2001:DB8::1]:8080/in") == "http://[2001:db8::1]:8080/in"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://hooks.example.com/in",
        "hooks.example.com/in",
        "http:///in",
        "https://user:password@hooks.example.com/in",
        "https://token@hooks.example.com/in",
        "https://hooks.example.com/in#part",
        "https://hooks.example.com/in#",
        "https://hooks.example.com/" + "a" * 2000,
        "https://hooks example.com/in",
        "https://hooks.example.com/in\n",
        "https://hooks.example.com:99999/in",
        "https://hooks.example.com:port/in",
        "http://[::1/in",
    ],
)
def test_check_url_refuses(url: str) -> None:
    with pytest.raises(DestinationRefused):
        check_url(url)


def test_check_url_accepts_the_longest_allowed_url() -> None:
    url = "https://hooks.example.com/"
    url += "a" * (2000 - len(url))

    assert check_url(url) == url


@pytest.mark.parametrize("text", [None, "", " ", " , "])
def test_no_allowance_means_no_networks(text: str | None) -> None:
    assert parse_allowed_networks(text) == ()


def test_allowance_reads_ranges_and_bare_addresses() -> None:
    networks = parse_allowed_networks(" 10.0.0.0/8, 127.0.0.1 ,::1,fd00::/8")

    assert networks == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("::1/128"),
        ipaddress.ip_network("fd00::/8"),
    )


@pytest.mark.parametrize("item", ["10.0.0.0/33", "intranet", "10.0.0.1/8", "1.2.3"])
def test_allowance_error_names_the_variable_and_the_item(item: str) -> None:
    with pytest.raises(ValueError, match=ALLOWED_NETWORKS_VARIABLE) as caught:
        parse_allowed_networks(f"192.168.0.0/16,{item}")

    assert repr(item) in str(caught.value)
