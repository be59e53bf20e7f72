"""Who is on the other end: the client's address and whether it used HTTPS.

Forwarding headers (``X-Forwarded-For``, ``X-Forwarded-Proto``) are believed only
when the peer that connected is one of ``settings.trusted_proxies``; from anyone
else they are the client's own words and change nothing. The server must hand
the peer over unchanged (``helpline serve`` runs uvicorn with its own proxy
header handling off), or the peer seen here is already a forwarded address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from helpline.console.web import ConsoleRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
UNKNOWN_ADDRESS = "unknown"


class ProxyTrust:
    """The proxies whose forwarding headers the console believes."""

    def __init__(self, networks: Iterable[str]) -> None:
        """Raises ``ValueError`` for an entry that is neither an address nor a
        CIDR range."""
        self._networks: tuple[Network, ...] = tuple(
            ipaddress.ip_network(entry.strip(), strict=False) for entry in networks
        )

    def trusts(self, address: str | None) -> bool:
        parsed = _address(address)
        return parsed is not None and any(parsed in net for net in self._networks)

    def client_address(self, request: ConsoleRequest) -> str:
        """The address sign-in throttling counts: the peer, or behind a trusted
        proxy the nearest forwarded hop that is not itself a trusted proxy.

        Reading from the right means a client cannot choose its address by
        sending an ``X-Forwarded-For`` of its own that a proxy then appends to;
        with one proxy that replaces the header, it is simply the first hop.
        """
        peer = request.peer or UNKNOWN_ADDRESS
        forwarded = request.headers.get("x-forwarded-for")
        if not forwarded or not self.trusts(request.peer):
            return peer
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        for hop in reversed(hops):
            parsed = _address(hop)
            if parsed is None:
                return peer  # a garbled chain tells nothing reliable
            if not self.trusts(hop):
                return str(parsed)
        return str(_address(hops[0])) if hops else peer

    def is_https(self, request: ConsoleRequest) -> bool:
        """Whether the browser reached us over HTTPS: directly, or through a
        trusted proxy that says so in ``X-Forwarded-Proto``."""
        if request.scheme == "https":
            return True
        forwarded = request.headers.get("x-forwarded-proto", "")
        first = forwarded.split(",")[0].strip().lower()
        return first == "https" and self.trusts(request.peer)


def _address(text: str | None) -> Address | None:
    if not text:
        return None
    try:
        parsed = ipaddress.ip_address(text)
    except ValueError:
        return None
    # A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d.
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped:
        return parsed.ipv4_mapped
    return parsed
