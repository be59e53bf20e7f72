"""The benchmark's baseline: an ASGI application that does no work.

It reads each request body to the end, as Helpline does, then answers with a
constant body shaped and sized like Helpline's success envelope and the same
response headers. Served by the same server with the same settings, the gap
between its figures and Helpline's is the cost of Helpline itself.

With ``BENCH_NOOP_WORK_US`` set, it first spends that many microseconds of CPU
on each request (busy, not asleep), to show what a fixed cost per request does
to the requests/s of the very same server.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

ENVELOPE = (
    b'{"success":true,"ticketId":1000000,"failureReason":null,'
    b'"error":false,"errorMsg":null,"warningMsg":null}'
)
HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(ENVELOPE)).encode()),
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-request-id", b"0123456789abcdef0123456789abcdef"),
]
WORK_SECONDS = int(os.environ.get("BENCH_NOOP_WORK_US", "0")) / 1_000_000


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _serve_lifespan(receive, send)
        return

    more_body = True
    while more_body:
        message = await receive()
        more_body = message.get("more_body", False)

    if WORK_SECONDS:
        _spend_cpu(WORK_SECONDS)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": ENVELOPE})


def _spend_cpu(seconds: float) -> None:
    done_at = time.perf_counter() + seconds
    while time.perf_counter() < done_at:
        pass


async def _serve_lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
