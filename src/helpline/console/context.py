"""What every console handler works with, built once per process."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from helpline.config import Settings
from helpline.console.pages import Pages
from helpline.console.proxies import ProxyTrust
from helpline.console.web import ConsoleRequest, Response
from helpline.storage.blobs import BlobStore
from helpline.storage.console import ConsoleStore


@dataclass(frozen=True, slots=True)
class Console:
    """The console's parts. ``blobs`` is None when the deployment has no
    directory for uploaded files (an in-memory database)."""

    settings: Settings
    store: ConsoleStore
    pages: Pages
    proxies: ProxyTrust
    blobs: BlobStore | None


# A route's handler; ``params`` are the named parts of the path it matched.
Handler = Callable[[Console, ConsoleRequest, Mapping[str, str]], Awaitable[Response]]
