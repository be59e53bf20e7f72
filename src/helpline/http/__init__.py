"""The HTTP edge: the Help Webservice API over ASGI."""

from __future__ import annotations

from helpline.config import Settings
from helpline.http.app import HelpApi
from helpline.storage.store import open_store


def create_app(settings: Settings) -> HelpApi:
    """The API application over a store for ``settings.database_url``.

    The schema must already be migrated; the app's lifespan starts the store.
    """
    store = open_store(
        settings.database_url,
        max_pending_writes=settings.max_pending_writes,
        pool=settings.pool,
    )
    return HelpApi(settings=settings, store=store)
