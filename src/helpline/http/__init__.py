"""The HTTP edge: the Help Webservice API over ASGI, with the agents' console
under ``/console``."""

from __future__ import annotations

from helpline.config import Settings
from helpline.console import create_console
from helpline.http.app import HelpApi
from helpline.outbox.dispatcher import OutboxService
from helpline.outbox.plan import plan_messages
from helpline.storage.store import open_store


def create_app(settings: Settings) -> HelpApi:
    """The API application over a store for ``settings.database_url``, with the
    console beside it, and the outbox's dispatcher unless
    ``settings.dispatcher`` is off.

    The schema must already be migrated; the app's lifespan starts the store.
    """
    store = open_store(
        settings.database_url,
        max_pending_writes=settings.max_pending_writes,
        pool=settings.pool,
        planner=plan_messages,
    )
    return HelpApi(
        settings=settings,
        store=store,
        console=create_console(settings),
        outbox=OutboxService(settings, dispatch=settings.dispatcher),
    )
