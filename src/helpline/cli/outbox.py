"""``helpline webhooks``, ``helpline outbox`` and ``helpline worker``: where
notifications go, what waits or died, and a dispatcher of its own."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Sequence

import click

from helpline.cli.common import (
    database_option,
    iso,
    migrated,
    opened,
    print_json,
    print_table,
)
from helpline.config import ConfigError, Settings, load_settings
from helpline.domain.clock import now_ms
from helpline.observability import configure_logging
from helpline.outbox.dispatcher import (
    DispatchConfig,
    DispatchConfigError,
    OutboxService,
)
from helpline.outbox.plan import WEBHOOK_EVENTS
from helpline.outbox.webhooks import (
    DeliveryFailed,
    DestinationRefused,
    check_destination,
    check_url,
    new_secret,
    parse_allowed_networks,
)
from helpline.storage.outbox import (
    DEAD,
    PENDING,
    OutboxMessage,
    OutboxStore,
    Webhook,
)

EVENT_TYPES = sorted(set(WEBHOOK_EVENTS.values()))


@click.group()
def webhooks() -> None:
    """Manage the URLs that receive an organization's ticket events."""


@webhooks.command("add")
@click.option("--org", "organization", required=True, help="The organization's name.")
@click.option("--url", required=True, help="Where to POST the events (http or https).")
@click.option(
    "--event",
    "events",
    multiple=True,
    type=click.Choice(EVENT_TYPES),
    help="An event to send; repeat it for several [default: every event].",
)
@database_option
def add_webhook(
    organization: str, url: str, events: tuple[str, ...], database_url: str
) -> None:
    """Add a webhook; prints its signing secret, once, on stdout."""
    try:
        address = check_url(url)
        allowed = parse_allowed_networks(
            ",".join(_settings(database_url).webhook_allowed_networks)
        )
        asyncio.run(check_destination(address, allowed))
    except DestinationRefused as refused:
        raise click.UsageError(str(refused)) from None
    except DeliveryFailed as failure:
        click.echo(f"warning: {failure}; adding it anyway", err=True)
    secret = new_secret()
    with opened(database_url, OutboxStore) as store:
        hook = store.add_webhook(
            organization,
            url=address,
            secret=secret,
            events=sorted(set(events)) or None,
            now_ms=now_ms(),
        )
    click.echo(
        f"added webhook {hook.id} for {hook.organization}: {hook.url} "
        f"({_event_names(hook)}); verify deliveries with the secret below",
        err=True,
    )
    click.echo(secret)


@webhooks.command("list")
@click.option("--org", "organization", default=None, help="Only this organization's.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@database_option
def list_webhooks(organization: str | None, as_json: bool, database_url: str) -> None:
    """List webhooks (never their secrets)."""
    with opened(database_url, OutboxStore) as store:
        found = store.list_webhooks(organization=organization)
    if as_json:
        print_json(
            [
                {
                    "id": hook.id,
                    "organization": hook.organization,
                    "url": hook.url,
                    "events": None if hook.events is None else list(hook.events),
                    "createdAt": iso(hook.created_at_ms),
                    "oldSecretUntil": _old_secret_until(hook),
                }
                for hook in found
            ]
        )
        return
    print_table(
        ["ID", "ORGANIZATION", "URL", "EVENTS", "CREATED", "OLD SECRET UNTIL"],
        [
            [
                str(hook.id),
                hook.organization,
                hook.url,
                _event_names(hook),
                iso(hook.created_at_ms),
                _old_secret_until(hook) or "-",
            ]
            for hook in found
        ],
    )


def _old_secret_until(hook: Webhook) -> str | None:
    """When the secret a rotation replaced stops signing, while it still does."""
    until = hook.previous_signs_until(now_ms())
    return None if until is None else iso(until)


@webhooks.command("rotate-secret")
@click.argument("webhook_id", type=int)
@click.option(
    "--keep-old",
    "keep_old_hours",
    type=click.FloatRange(min=0),
    default=24.0,
    show_default=True,
    help="Hours the old secret still signs deliveries, beside the new one "
    "(0: stop at once).",
)
@database_option
def rotate_secret(webhook_id: int, keep_old_hours: float, database_url: str) -> None:
    """Give a webhook a new signing secret; prints it, once, on stdout.

    Until the old secret's time is up, each delivery carries two signatures, one
    per secret, and a receiver that checks either accepts it: switch the
    receiver to the new secret any time within those hours.
    """
    secret = new_secret()
    until_ms = now_ms() + round(keep_old_hours * 3_600_000)
    with opened(database_url, OutboxStore) as store:
        before = store.webhooks_by_id([webhook_id]).get(webhook_id)
        hook = store.rotate_webhook_secret(
            webhook_id, secret=secret, previous_until_ms=until_ms
        )
    if before is not None and (ending := _old_secret_until(before)) is not None:
        click.echo(
            f"warning: the secret replaced by the last rotation (signing until "
            f"{ending}) no longer signs deliveries; only one old secret is kept",
            err=True,
        )
    old = (
        f"the old one also signs deliveries until {iso(until_ms)}"
        if keep_old_hours
        else "the old one no longer signs deliveries"
    )
    click.echo(
        f"webhook {hook.id} ({hook.url}) has a new secret, below; {old}", err=True
    )
    click.echo(secret)


@webhooks.command("remove")
@click.argument("webhook_id", type=int)
@database_option
def remove_webhook(webhook_id: int, database_url: str) -> None:
    """Remove a webhook; what it had still to receive is marked dead."""
    with opened(database_url, OutboxStore) as store:
        abandoned = store.remove_webhook(webhook_id, now_ms=now_ms())
    click.echo(
        f"removed webhook {webhook_id}; {abandoned} undelivered message(s) marked dead",
        err=True,
    )


@click.group()
def outbox() -> None:
    """See and resend the notifications waiting in the outbox."""


@outbox.command("list")
@click.option("--dead", is_flag=True, help="Only messages that will not be retried.")
@click.option("--pending", is_flag=True, help="Only messages still to be delivered.")
@click.option("--ticket", "ticket_id", type=int, default=None, help="One ticket's.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@database_option
def list_messages(
    *,
    dead: bool,
    pending: bool,
    ticket_id: int | None,
    limit: int,
    as_json: bool,
    database_url: str,
) -> None:
    """List messages, newest first."""
    if dead and pending:
        raise click.UsageError("choose --dead or --pending, not both")
    state = DEAD if dead else PENDING if pending else None
    with opened(database_url, OutboxStore) as store:
        found = store.list_messages(state=state, ticket_id=ticket_id, limit=limit)
    if as_json:
        print_json([_message_json(message) for message in found])
        return
    print_table(
        [
            "ID",
            "STATE",
            "TICKET",
            "CHANNEL",
            "EVENT",
            "TO",
            "ATTEMPTS",
            "NEXT",
            "ERROR",
        ],
        [
            [
                str(message.id),
                message.state,
                str(message.ticket_id),
                message.channel,
                message.event_type,
                message.destination,
                str(message.attempts),
                iso(message.next_attempt_at_ms) if message.state == "pending" else "-",
                message.last_error or "-",
            ]
            for message in found
        ],
    )


@outbox.command("retry")
@click.argument("message_ids", type=int, nargs=-1, required=True)
@database_option
def retry_messages(message_ids: Sequence[int], database_url: str) -> None:
    """Send messages again at once, with a fresh count of attempts."""
    with opened(database_url, OutboxStore) as store:
        found = store.retry(message_ids, now_ms=now_ms())
    missing = sorted(set(message_ids) - set(found))
    if found:
        click.echo(f"queued again: {', '.join(map(str, found))}", err=True)
    if missing:
        raise click.ClickException(f"no message has the id {missing[0]}")


@outbox.command("purge")
@click.option(
    "--sent-days",
    type=click.IntRange(0, None),
    default=30,
    show_default=True,
    help="Delete messages sent more than this many days ago.",
)
@database_option
def purge_messages(sent_days: int, database_url: str) -> None:
    """Delete old sent messages; pending and dead ones are kept."""
    cutoff = now_ms() - sent_days * 86_400_000
    with opened(database_url, OutboxStore) as store:
        deleted = store.purge_sent(sent_before_ms=cutoff)
    click.echo(
        f"deleted {deleted} message(s) sent more than {sent_days} days ago", err=True
    )


@click.command()
@database_option
def worker(database_url: str) -> None:
    """Deliver notifications until stopped (beside serve with HELPLINE_DISPATCHER=off,
    or as several workers on PostgreSQL)."""
    settings = _settings(database_url)
    configure_logging(log_format=settings.log_format)
    migrated(database_url)
    service = OutboxService(settings, dispatch=True)
    click.echo(f"Helpline worker delivering the outbox of {database_url}", err=True)
    asyncio.run(_work(service))


async def _work(service: OutboxService) -> None:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, stopping.set)
    await service.start()
    waiting = asyncio.create_task(service.wait())
    await asyncio.wait(
        [waiting, asyncio.create_task(stopping.wait())],
        return_when=asyncio.FIRST_COMPLETED,
    )
    await service.stop()
    with contextlib.suppress(asyncio.CancelledError):
        await waiting


def _settings(database_url: str) -> Settings:
    """The environment's settings for this database, with the outbox's checked."""
    try:
        settings = load_settings().with_overrides(database_url=database_url)
        DispatchConfig.from_settings(settings)
    except (ConfigError, DispatchConfigError) as problem:
        raise click.UsageError(str(problem)) from None
    return settings


def _event_names(hook: Webhook) -> str:
    return "every event" if hook.events is None else ", ".join(hook.events)


def _message_json(message: OutboxMessage) -> dict[str, object]:
    return {
        "id": message.id,
        "state": message.state,
        "ticketId": message.ticket_id,
        "eventId": message.event_id,
        "channel": message.channel,
        "eventType": message.event_type,
        "webhookId": message.webhook_id,
        "destination": message.destination,
        "attempts": message.attempts,
        "nextAttemptAt": iso(message.next_attempt_at_ms),
        "lastError": message.last_error,
        "createdAt": iso(message.created_at_ms),
        "sentAt": iso(message.sent_at_ms),
    }
