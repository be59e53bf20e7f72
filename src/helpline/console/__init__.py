"""The agents' console: server-rendered pages under ``/console`` where support
agents sign in, work the ticket queue and act on tickets.

It sits beside the API (``HelpApi`` routes ``/console`` here) and reaches the
tickets only through ``ConsoleStore``.
"""

from __future__ import annotations

from helpline.config import Settings
from helpline.console.app import ConsoleApp
from helpline.console.context import Console
from helpline.console.pages import Pages
from helpline.console.proxies import ProxyTrust
from helpline.storage.blobs import BlobStore, blob_root_for, shared_blob_store
from helpline.storage.console import ConsoleStore

__all__ = ["ConsoleApp", "create_console"]


def create_console(settings: Settings) -> ConsoleApp:
    """The console over its own store for ``settings.database_url``.

    Raises ``ValueError`` for a ``trusted_proxies`` entry that is neither an
    address nor a CIDR range.
    """
    console = Console(
        settings=settings,
        store=ConsoleStore(settings.database_url, pool=settings.pool),
        pages=Pages(),
        proxies=ProxyTrust(settings.trusted_proxies),
        blobs=_blobs(settings),
    )
    return ConsoleApp(console)


def _blobs(settings: Settings) -> BlobStore | None:
    try:
        root = blob_root_for(settings.database_url, settings.blob_dir)
    except ValueError:
        # No directory for files (an in-memory database): the API cannot store
        # any either, and a download answers that there are none.
        return None
    return shared_blob_store(root)
