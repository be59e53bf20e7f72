"""``helpline serve``: migrate, create the first organization if needed, and serve."""

from __future__ import annotations

import click
import uvicorn

from helpline.cli.common import database_option, migrated
from helpline.config import ConfigError, Settings, load_settings
from helpline.domain.clock import now_ms
from helpline.domain.keys import issue_key
from helpline.domain.organizations import DEFAULT_ORGANIZATION
from helpline.http import create_app
from helpline.observability import configure_logging
from helpline.storage.admin import AdminStore
from helpline.storage.blobs import blob_root_for

BOOTSTRAP_USER = "admin@localhost"


@click.command()
@click.option("--host", default=None, help="Address to listen on [default: 127.0.0.1].")
@click.option(
    "--port", default=None, type=click.IntRange(0, 65535), help="[default: 8080]"
)
@database_option
def serve(host: str | None, port: int | None, database_url: str) -> None:
    """Serve the Help Webservice API (HELPLINE_* variables configure it)."""
    try:
        settings = load_settings().with_overrides(
            host=host, port=port, database_url=database_url
        )
        blob_root_for(settings.database_url, settings.blob_dir)
    except (ConfigError, ValueError) as problem:
        raise click.UsageError(str(problem)) from None
    configure_logging(log_format=settings.log_format)

    migrated(settings.database_url)
    _bootstrap(settings)

    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        server_header=False,
        # Helpline reads no client address yet, so it trusts no forwarding header.
        proxy_headers=False,
    )
    click.echo(
        f"Helpline is serving http://{settings.host}:{settings.port} "
        f"on {settings.database_url}",
        err=True,
    )
    uvicorn.Server(config).run()


def _bootstrap(settings: Settings) -> None:
    """On the very first start, create an organization and print its key once."""
    key = issue_key()
    store = AdminStore(settings.database_url)
    try:
        created = store.bootstrap(
            name=DEFAULT_ORGANIZATION,
            user_email=BOOTSTRAP_USER,
            key=key,
            now_ms=now_ms(),
        )
    finally:
        store.close()
    if not created:
        return
    url = f"http://{settings.host}:{settings.port}/api/help/ticket"
    click.echo(
        f"""
================================================================================
 First start: created the organization "{DEFAULT_ORGANIZATION}" and an API key.
 The key is shown only this once; store it somewhere safe:

     export HELPLINE_API_KEY={key.token}

 Then open a ticket with it:

     curl -s {url} \\
       -H 'Content-Type: application/json' \\
       -H "x-auth-apikey: $HELPLINE_API_KEY" \\
       -H 'x-auth-scheme: api-token' \\
       -d '{{"subject": "Camera connectivity issue", "body": "It is offline."}}'
================================================================================
"""
    )
