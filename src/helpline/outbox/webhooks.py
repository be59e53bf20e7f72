"""Webhooks: signing per Standard Webhooks, the destination check, one delivery.

A receiver checks our requests the way the Standard Webhooks specification
describes: the ``webhook-signature`` header holds ``v1,`` and the base64 HMAC-SHA256
of ``{webhook-id}.{webhook-timestamp}.{body}``, keyed with the bytes of the endpoint's
``whsec_`` secret. Any of the spec's reference libraries can verify it.

Webhook URLs are typed in by people, and Helpline calls them from inside the
operator's network, so a URL could be used to reach what only Helpline can reach
(a metadata service, an admin port on localhost). Each delivery therefore resolves
the host first and refuses any address that is not public, unless the operator
allowed its range in HELPLINE_WEBHOOK_ALLOWED_NETWORKS. The dispatcher's client
(``webhook_client``) checks again as it connects, the very addresses it connects
to, so a name that resolves to a public address for the check and to another for
the connection (DNS rebinding) reaches nothing it should not.

``deliver`` makes exactly one attempt; the outbox dispatcher decides when to try
again, guided by ``DeliveryFailed.retryable`` and ``retry_after``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime
import email.utils
import hashlib
import hmac
import ipaddress
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeAlias
from urllib.parse import SplitResult, urlsplit, urlunsplit

import httpcore
import httpx

from helpline.outbox.tls import trusting

EVENTS = (
    "ticket.created",
    "ticket.updated",
    "ticket.status_changed",
    "ticket.replied",
)

ALLOWED_NETWORKS_VARIABLE = "HELPLINE_WEBHOOK_ALLOWED_NETWORKS"
SECRET_PREFIX = "whsec_"  # noqa: S105 - the marker of a secret, not one
USER_AGENT = "Helpline-Webhooks/1"
MAX_URL_LENGTH = 2000
# Enough for any sensible acknowledgement; a receiver that answers with more is
# cut off rather than buffered, since we never look at what it says.
MAX_RESPONSE_BYTES = 64 * 1024
# Statuses whose Retry-After header says when to come back (RFC 9110, 10.2.3).
_RETRY_AFTER_STATUSES = frozenset({429, 503})

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

_SHARED_ADDRESS_SPACE = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")


# --- Signing --------------------------------------------------------------------------


def new_secret() -> str:
    """A new signing secret: ``whsec_`` and the base64 of 32 random bytes."""
    key = secrets.token_bytes(32)
    return SECRET_PREFIX + base64.b64encode(key).decode("ascii")


def _secret_key(secret: str) -> bytes:
    """The key bytes inside a ``whsec_`` secret.

    Raises ValueError when the secret lacks the prefix, is not base64, or is empty.
    The message never repeats the secret, since it may end up in a log.
    """
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("a webhook secret must start with 'whsec_'")

    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except binascii.Error:
        raise ValueError("a webhook secret must be 'whsec_' and base64") from None

    if not key:
        raise ValueError("a webhook secret must not be empty after 'whsec_'")
    return key


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value, ``v1,`` and a base64 HMAC-SHA256.

    The signed content is the message id, the timestamp and the body joined by
    dots; the body is used byte for byte, so the receiver must verify the raw
    request body, not a re-encoded copy. Raises ValueError for a malformed secret.
    """
    key = _secret_key(secret)
    content = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signed_headers(
    secret: str,
    message_id: str,
    timestamp: int,
    body: bytes,
    *,
    also_signed_with: Sequence[str] = (),
) -> dict[str, str]:
    """The headers of one delivery: the three Standard Webhooks headers, the JSON
    content type and our user agent. Each secret of ``also_signed_with`` (the one
    a rotation replaced) adds its signature, space-separated, as the
    specification allows; a receiver accepts the delivery when one matches.
    Raises ValueError for a malformed secret."""
    signatures = [
        sign(each, message_id, timestamp, body) for each in (secret, *also_signed_with)
    ]
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signatures),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


# --- Which destinations are allowed ---------------------------------------------------


def parse_allowed_networks(text: str | None) -> tuple[IPNetwork, ...]:
    """The ranges in HELPLINE_WEBHOOK_ALLOWED_NETWORKS, comma-separated CIDR.

    A bare address is a range of one. Unset or blank means no exceptions. A range
    with host bits set (10.0.0.1/8) is an error rather than silently widened, since
    the operator most likely meant something narrower. Raises ValueError naming the
    variable and the item.
    """
    if text is None:
        return ()

    networks: list[IPNetwork] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item))
        except ValueError as exc:
            raise ValueError(
                f"{ALLOWED_NETWORKS_VARIABLE}: {item!r} is not an address or a CIDR"
                f" range such as 10.0.0.0/8 or fd00::/8 ({exc})"
            ) from None
    return tuple(networks)


class DestinationRefused(ValueError):
    """A webhook URL Helpline will not call; the message says why and how to allow
    it."""


class DeliveryFailed(Exception):
    """A delivery that did not succeed.

    ``retryable`` says whether trying again later can help; ``status`` is the HTTP
    status if one came back; ``retry_after`` the seconds a Retry-After header asked
    for (429 and 503), if any.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = True,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after


def check_url(url: str) -> str:
    """The URL normalized (scheme and host lowercased, no fragment), after checking
    its syntax: http or https, a host, no user or password, no fragment, no spaces
    or control characters, at most 2000 characters.

    Nothing is resolved here; ``webhooks add`` calls this so that typos are caught
    when the webhook is registered. Raises DestinationRefused.
    """
    if len(url) > MAX_URL_LENGTH:
        raise DestinationRefused(f"a webhook URL is at most {MAX_URL_LENGTH} chars")
    if any(ord(char) <= 0x20 or ord(char) == 0x7F for char in url):
        raise DestinationRefused("a webhook URL must not contain spaces or controls")

    parts = _split(url)
    if parts.scheme.lower() not in {"http", "https"}:
        raise DestinationRefused(f"a webhook URL must be http or https: {url!r}")
    if not parts.hostname:
        raise DestinationRefused(f"a webhook URL needs a host: {url!r}")
    if parts.username is not None or parts.password is not None:
        raise DestinationRefused(
            "a webhook URL must not carry a user name or password; the receiver"
            " checks the webhook-signature header instead"
        )
    if "#" in url:
        raise DestinationRefused("a webhook URL must not have a #fragment")

    netloc = _netloc(parts.hostname, parts.port)
    return urlunsplit((parts.scheme.lower(), netloc, parts.path, parts.query, ""))


def _split(url: str) -> SplitResult:
    """The URL's parts, with a port that is a number; DestinationRefused if not."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - urlsplit checks the port only when it is read
    except ValueError as exc:
        raise DestinationRefused(f"not a valid URL: {url!r} ({exc})") from None
    return parts


def _netloc(host: str, port: int | None) -> str:
    """Host and port as they go back into a URL (IPv6 addresses in brackets)."""
    if ":" in host:
        host = f"[{host}]"
    return host if port is None else f"{host}:{port}"


def _why_not_public(address: IPAddress) -> str | None:
    """Why Helpline will not call this address, or None for a public unicast one.

    The explicit checks come first only to name the reason; ``is_global`` then
    catches the remaining special-purpose ranges. An IPv6 address that carries an
    IPv4 one (mapped, NAT64, 6to4) is judged by the IPv4 address it leads to.
    """
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            reason = _why_not_public(embedded)
            return None if reason is None else f"{reason} (as {embedded})"

    checks = (
        (address.is_unspecified, "unspecified"),
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (address.is_private, "private"),
        (address in _SHARED_ADDRESS_SPACE, "shared (carrier NAT)"),
        (address.is_reserved, "reserved"),
        (not address.is_global, "non-public"),
    )
    return next((reason for failed, reason in checks if failed), None)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address a connection to this IPv6 address ends up at, if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64_PREFIX:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def _is_allowed(address: IPAddress, allowed: Sequence[IPNetwork]) -> bool:
    """Whether the operator allowed this address, directly or as the IPv4 address
    an IPv4-mapped one stands for."""
    candidates: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        candidates.append(address.ipv4_mapped)
    return any(each in network for each in candidates for network in allowed)


async def check_destination(url: str, allowed: Sequence[IPNetwork]) -> None:
    """Resolve the URL's host and refuse it unless every address it resolves to is
    public or lies in one of the ``allowed`` ranges.

    Raises DestinationRefused for a bad URL or a refused address (the message says
    how to allow it), and a retryable DeliveryFailed when the name does not resolve,
    since a DNS outage or a record not yet published can pass.
    """
    parts = _split(check_url(url))
    host = parts.hostname or ""
    addresses = await _resolve(host, parts.port or _default_port(parts.scheme))
    _refuse_unless_allowed(host, addresses, allowed)


def _refuse_unless_allowed(
    host: str, addresses: Sequence[IPAddress], allowed: Sequence[IPNetwork]
) -> None:
    """Raises DestinationRefused unless each of ``host``'s addresses is public or
    allowed."""
    for address in addresses:
        reason = _why_not_public(address)
        if reason is not None and not _is_allowed(address, allowed):
            named = host if host == str(address) else f"{host} ({address})"
            raise DestinationRefused(
                f"{named} is a {reason} address, and Helpline calls only public"
                f" addresses; to allow it, add its range to {ALLOWED_NETWORKS_VARIABLE}"
                f" (for example {address}/{address.max_prefixlen})"
            )


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


async def _resolve(host: str, port: int) -> list[IPAddress]:
    """Every address the host resolves to, through the system resolver."""
    loop = asyncio.get_running_loop()
    try:
        found = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise DeliveryFailed(f"could not resolve {host}: {exc.strerror}") from None
    except UnicodeError:
        raise DestinationRefused(f"not a valid host name: {host!r}") from None

    # Only IPv4 and IPv6 socket addresses start with the address as text; asking
    # for TCP should give nothing else, and anything else is skipped.
    addresses = [
        ipaddress.ip_address(sockaddr[0])
        for family, _, _, _, sockaddr in found
        if family in {socket.AF_INET, socket.AF_INET6}
    ]
    if not addresses:
        raise DeliveryFailed(f"{host} resolved to no IPv4 or IPv6 address")
    return addresses


# --- The client that connects only to checked addresses ------------------------------

Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]


class _CheckedNetwork(httpcore.AsyncNetworkBackend):
    """TCP connections only to addresses that pass the destination check: the
    host is resolved here, each of its addresses checked, and the connection
    made to those addresses themselves, so nothing resolves the name again.
    TLS still names the host (SNI and the certificate check), and connections
    are pooled by host, as without this."""

    def __init__(self, allowed: Sequence[IPNetwork], resolve: Resolver) -> None:
        self._allowed = allowed
        self._resolve = resolve
        self._network = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._resolve(host, port)
        _refuse_unless_allowed(host, addresses, self._allowed)
        failure: httpcore.ConnectError | None = None
        for address in addresses:
            try:
                return await self._network.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError as error:  # the next address may answer
                failure = error
        assert failure is not None  # noqa: S101 (_resolve returns an address or raises)
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise DestinationRefused("webhooks are called over TCP only")

    async def sleep(self, seconds: float) -> None:
        await self._network.sleep(seconds)


def webhook_client(
    allowed: Sequence[IPNetwork],
    *,
    ca_file: str | None = None,
    resolve: Resolver | None = None,
) -> httpx.AsyncClient:
    """The client the dispatcher delivers with: no redirects, no proxy or other
    settings from the environment, certificates checked against the public
    authorities and those of ``ca_file``, and connections only to checked
    addresses (``resolve`` stands in for the system resolver in tests)."""
    transport = httpx.AsyncHTTPTransport(trust_env=False)
    # httpx builds its connection pool without a way to pass httpcore's network
    # backend, so the pool is replaced by one with the same settings that has it.
    # tests/test_webhooks.py fails if a future httpx stops using this pool.
    limits = httpx.Limits()
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=trusting(httpx.create_ssl_context(trust_env=False), ca_file),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=_CheckedNetwork(allowed, resolve or _resolve),
    )
    return httpx.AsyncClient(
        transport=transport, follow_redirects=False, trust_env=False
    )


# --- Delivery -------------------------------------------------------------------------


async def deliver(
    client: httpx.AsyncClient,
    *,
    url: str,
    secret: str,
    message_id: str,
    body: bytes,
    allowed: Sequence[IPNetwork],
    timeout: float = 10.0,
    now: Callable[[], float] = time.time,
    also_signed_with: Sequence[str] = (),
) -> int:
    """POST one signed message to the webhook URL and return its 2xx status.

    The destination is checked first, so a refused address gets no request at all.
    Redirects are not followed (they could lead to an address we would refuse).
    ``timeout`` bounds the whole attempt: resolving, connecting, sending and
    reading. At most 64 KiB of the answer is read.

    ``also_signed_with`` adds signatures, as ``signed_headers`` says.

    Raises DestinationRefused, and DeliveryFailed for anything but a 2xx answer:
    retryable except for 410 Gone, which a receiver sends to say it is gone.
    ValueError for a malformed secret, before anything is sent.
    """
    timestamp = int(now())
    headers = signed_headers(
        secret, message_id, timestamp, body, also_signed_with=also_signed_with
    )

    try:
        async with asyncio.timeout(timeout):
            await check_destination(url, allowed)
            status, response_headers = await _post(
                client, url=url, headers=headers, body=body, timeout=timeout
            )
    except (TimeoutError, httpx.TimeoutException):
        raise DeliveryFailed(f"timed out after {timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise DeliveryFailed(_transport_failure(url, exc)) from None

    if 200 <= status < 300:
        return status
    raise _failed_status(url, status, response_headers, now=now)


async def _post(
    client: httpx.AsyncClient,
    *,
    url: str,
    headers: dict[str, str],
    body: bytes,
    timeout: float,
) -> tuple[int, httpx.Headers]:
    """Send the request and read at most MAX_RESPONSE_BYTES of the answer.

    The answer is read (and then discarded) so that a short one leaves the
    connection reusable; raw bytes are read so a compressed answer cannot expand.
    """
    request = client.build_request(
        "POST", url, headers=headers, content=body, timeout=timeout
    )
    response = await client.send(request, stream=True, follow_redirects=False)
    try:
        received = 0
        async for chunk in response.aiter_raw():
            received += len(chunk)
            if received >= MAX_RESPONSE_BYTES:
                break
    finally:
        await response.aclose()
    return response.status_code, response.headers


def _display(url: str) -> str:
    """The URL without its query, for messages: a query may hold a receiver's
    token, and these messages are stored and logged."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _transport_failure(url: str, exc: httpx.HTTPError) -> str:
    """A short message for a request that got no HTTP answer."""
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectError):
        return f"could not connect to {_display(url)}: {detail}"
    return f"request to {_display(url)} failed: {detail}"


def _failed_status(
    url: str, status: int, headers: httpx.Headers, *, now: Callable[[], float]
) -> DeliveryFailed:
    """The failure for a non-2xx answer."""
    message = f"HTTP {status} from {_display(url)}"

    if status == 410:
        return DeliveryFailed(
            f"{message}: the receiver says this endpoint is gone",
            retryable=False,
            status=status,
        )
    if 300 <= status < 400:
        location = headers.get("location", "")[:200]
        return DeliveryFailed(
            f"{message}, redirecting to {location!r}; redirects are not followed,"
            " so point the webhook at the final URL",
            status=status,
        )

    retry_after = None
    if status in _RETRY_AFTER_STATUSES:
        retry_after = _retry_after_seconds(headers.get("retry-after"), now=now)
    return DeliveryFailed(message, status=status, retry_after=retry_after)


def _retry_after_seconds(
    value: str | None, *, now: Callable[[], float]
) -> float | None:
    """The seconds a Retry-After header asks for, as a number or an HTTP date; None
    when absent or unreadable. A date in the past means now (0 seconds)."""
    if value is None:
        return None

    value = value.strip()
    if value.isdigit():
        return float(value)

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000" parses as naive; HTTP dates are in UTC
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, when.timestamp() - now())
