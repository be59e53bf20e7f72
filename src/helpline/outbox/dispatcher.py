"""The dispatcher: fans ticket events out into messages and delivers them.

One runs inside every ``helpline serve`` unless ``HELPLINE_DISPATCHER=off``, and
``helpline worker`` runs one alone. On PostgreSQL any number work side by side,
each skipping the rows another has locked; on SQLite they take turns holding one
lease, so a single dispatcher works at a time and the others stand by.

Each step: take the lease (SQLite), fan out pending events (every event but an
API create's, whose messages the store's writer plans), claim due messages,
deliver them concurrently outside any transaction, and record what happened. A
failure is tried again after ``retry_seconds`` * 2^(attempt - 1), ±20 % jitter,
capped at six hours; after the last attempt the message is dead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import structlog

from helpline.config import Settings
from helpline.domain.clock import now_ms
from helpline.outbox.mail import MailComposer, MailSettings, TicketMail, mail_settings
from helpline.outbox.plan import EMAIL, WEBHOOK, plan_messages
from helpline.outbox.smtp import SendFailed, SmtpSettings, send, smtp_settings
from helpline.outbox.tls import check_ca_file
from helpline.outbox.webhooks import (
    DeliveryFailed,
    IPNetwork,
    deliver,
    parse_allowed_networks,
    webhook_client,
)
from helpline.storage.engine import is_sqlite
from helpline.storage.errors import StorageError
from helpline.storage.outbox import (
    DeliveryResult,
    OutboxDepth,
    OutboxMessage,
    OutboxStore,
    Webhook,
)

log = structlog.get_logger("helpline.outbox")

LEASE_NAME = "dispatcher"
# SQLite: how long a dispatcher's turn outlives its last step, at most; a
# standby takes over this soon after the working one dies. Messages keep their own,
# longer leases, so a step that outruns this never sends a message twice at once.
DISPATCHER_LEASE_MS = 15_000
MAX_RETRY_DELAY_SECONDS = 6 * 3600
FAN_OUT_BATCH = 200  # events per transaction: short write locks on SQLite
CLAIM_BATCH = 32
DEPTH_LOG_SECONDS = 60.0
DEPTH_FRESH_SECONDS = 5.0
_jitter = random.Random()  # noqa: S311 - spreading retries, not secrets


class DispatchConfigError(ValueError):
    """The outbox's settings cannot be used; the message names the variable."""


@dataclass(frozen=True, slots=True)
class DispatchConfig:
    """What a dispatcher runs with, checked once from ``Settings``."""

    smtp: SmtpSettings | None
    mail: MailSettings | None
    allowed_networks: tuple[IPNetwork, ...]
    webhook_timeout: float
    tls_ca_file: str | None
    retry_seconds: float
    max_attempts: int
    lease_seconds: float
    poll_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> DispatchConfig:
        try:
            ca_file = (
                None
                if settings.tls_ca_file is None
                else check_ca_file(settings.tls_ca_file)
            )
            smtp = (
                None
                if settings.smtp_url is None
                else smtp_settings(settings.smtp_url, ca_file=ca_file)
            )
            if smtp is not None and settings.mail_from is None:
                raise ValueError(
                    "HELPLINE_SMTP_URL is set but HELPLINE_MAIL_FROM is not: "
                    "set it to the address mails come from"
                )
            mail = None
            if settings.mail_from is not None:
                mail = mail_settings(settings.mail_from, settings.mail_templates)
            allowed = parse_allowed_networks(
                ",".join(settings.webhook_allowed_networks)
            )
        except ValueError as problem:
            raise DispatchConfigError(str(problem)) from None
        longest_call = max(settings.webhook_timeout, smtp.timeout if smtp else 0.0)
        if settings.outbox_lease_seconds <= longest_call:
            raise DispatchConfigError(
                "HELPLINE_OUTBOX_LEASE_SECONDS must be longer than a delivery may "
                f"take ({longest_call:g} s), or another dispatcher would send again"
            )
        return cls(
            smtp=smtp,
            mail=mail,
            allowed_networks=allowed,
            webhook_timeout=settings.webhook_timeout,
            tls_ca_file=ca_file,
            retry_seconds=settings.outbox_retry_seconds,
            max_attempts=settings.outbox_max_attempts,
            lease_seconds=settings.outbox_lease_seconds,
            poll_seconds=max(0.05, settings.outbox_poll_seconds),
        )

    @property
    def channels(self) -> tuple[str, ...]:
        """What can be delivered: without SMTP, mails wait in the outbox."""
        return (WEBHOOK, EMAIL) if self.smtp is not None else (WEBHOOK,)


def retry_delay(attempts: int, base_seconds: float) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt."""
    delay = base_seconds * 2.0 ** min(40, max(0, attempts - 1))
    return float(min(MAX_RETRY_DELAY_SECONDS, delay * _jitter.uniform(0.8, 1.2)))


class Dispatcher:
    """Delivers the outbox of one database until stopped."""

    def __init__(self, store: OutboxStore, config: DispatchConfig, *, url: str) -> None:
        self._store = store
        self._config = config
        self._single_claimant = is_sqlite(url)
        self._holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._composer = None if config.mail is None else MailComposer(config.mail)
        self._holding = False
        self._renew_at = 0.0

    @property
    def holding(self) -> bool:
        """Whether this dispatcher works now (False: standing by for the lease)."""
        return self._holding or not self._single_claimant

    async def run(self, stopping: asyncio.Event) -> None:
        """Work until ``stopping`` is set; database outages are waited out."""
        async with webhook_client(
            self._config.allowed_networks, ca_file=self._config.tls_ca_file
        ) as client:
            try:
                while not stopping.is_set():
                    busy = False
                    try:
                        busy = await self.step(client)
                    except StorageError as error:
                        log.warning("outbox_storage_unavailable", error=str(error))
                    except Exception:
                        # A bug must not end delivery for good: log it, go on.
                        log.exception("outbox_step_failed")
                    if not busy:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(
                                stopping.wait(), self._config.poll_seconds
                            )
            finally:
                if self._single_claimant and self._holding:
                    with contextlib.suppress(StorageError):
                        await asyncio.to_thread(
                            self._store.release_lease, LEASE_NAME, self._holder
                        )

    async def step(self, client: httpx.AsyncClient) -> bool:
        """One round of work; returns whether there was any."""
        lease_ms = int(self._config.lease_seconds * 1000)
        if self._single_claimant and not await self._hold_turn(lease_ms):
            return False
        # Write transactions only when there is something to write: on SQLite each
        # one makes the API's writer wait for the lock.
        events, due = await asyncio.to_thread(
            self._store.work_waiting, channels=self._config.channels, now_ms=now_ms()
        )
        fanned = 0
        if events:
            fanned = await asyncio.to_thread(
                self._store.fan_out, plan_messages, limit=FAN_OUT_BATCH, now_ms=now_ms()
            )
        claimed: list[OutboxMessage] = []
        if due:
            claimed = await asyncio.to_thread(
                self._store.claim,
                channels=self._config.channels,
                limit=CLAIM_BATCH,
                lease_ms=lease_ms,
                now_ms=now_ms(),
            )
        if claimed:
            hooks = await self._webhooks_of(claimed)
            # Tickets side by side; one ticket's messages in order, so that a
            # reply is not overtaken by the mail saying the ticket was solved.
            by_ticket: dict[int, list[OutboxMessage]] = {}
            for message in claimed:
                by_ticket.setdefault(message.ticket_id, []).append(message)
            batches = await asyncio.gather(
                *(
                    self._deliver_in_order(client, messages, hooks)
                    for messages in by_ticket.values()
                )
            )
            results = [result for batch in batches for result in batch]
            await asyncio.to_thread(self._store.record, results, now_ms=now_ms())
        # Straight on while a backlog remains; messages just fanned out are seen
        # by the next step's check.
        return fanned == FAN_OUT_BATCH or bool(claimed)

    async def _hold_turn(self, lease_ms: int) -> bool:
        """SQLite: take or keep the one dispatcher's turn; renewed a few times per
        lease, not every step, since each renewal is a write."""
        ttl_ms = min(lease_ms, DISPATCHER_LEASE_MS)
        if self._holding and time.monotonic() < self._renew_at:
            return True
        held = await asyncio.to_thread(
            self._store.hold_lease,
            LEASE_NAME,
            self._holder,
            ttl_ms=ttl_ms,
            now_ms=now_ms(),
        )
        if held != self._holding:
            log.info("outbox_lease", holding=held, holder=self._holder)
        self._holding = held
        self._renew_at = time.monotonic() + ttl_ms / 3000
        return held

    async def _webhooks_of(
        self, messages: Sequence[OutboxMessage]
    ) -> dict[int, Webhook]:
        ids = {m.webhook_id for m in messages if m.webhook_id is not None}
        if not ids:
            return {}
        return await asyncio.to_thread(self._store.webhooks_by_id, ids)

    async def _deliver_in_order(
        self,
        client: httpx.AsyncClient,
        messages: Sequence[OutboxMessage],
        hooks: dict[int, Webhook],
    ) -> list[DeliveryResult]:
        return [await self._deliver(client, message, hooks) for message in messages]

    async def _deliver(
        self,
        client: httpx.AsyncClient,
        message: OutboxMessage,
        hooks: dict[int, Webhook],
    ) -> DeliveryResult:
        try:
            if message.channel == EMAIL:
                await self._send_mail(message)
            else:
                hook = (
                    None
                    if message.webhook_id is None
                    else hooks.get(message.webhook_id)
                )
                await self._call_webhook(client, message, hook)
        except _Failed as failure:
            return self._failed(message, failure)
        log.info(
            "outbox_sent",
            message_id=message.id,
            ticket_id=message.ticket_id,
            channel=message.channel,
            event_type=message.event_type,
            attempts=message.attempts,
        )
        return DeliveryResult(message.id, message.attempts, sent=True)

    async def _send_mail(self, message: OutboxMessage) -> None:
        smtp, composer = self._config.smtp, self._composer
        if smtp is None or composer is None:  # claimed only with SMTP configured
            raise _Failed("mail is not configured", permanent=False)
        try:
            fields: dict[str, Any] = json.loads(message.payload)
            mail = composer.compose(
                TicketMail(
                    kind=message.event_type,  # type: ignore[arg-type]
                    message_number=message.id,
                    recipient=message.destination,
                    **fields,
                )
            )
        except (ValueError, TypeError) as problem:
            raise _Failed(
                f"cannot compose the mail: {problem}", permanent=True
            ) from None
        try:
            await asyncio.to_thread(send, mail, smtp)
        except SendFailed as failure:
            raise _Failed(str(failure), permanent=failure.permanent) from None

    async def _call_webhook(
        self,
        client: httpx.AsyncClient,
        message: OutboxMessage,
        hook: Webhook | None,
    ) -> None:
        if hook is None:
            raise _Failed(f"webhook {message.webhook_id} was removed", permanent=True)
        current, *previous = hook.secrets_at(now_ms())
        try:
            await deliver(
                client,
                url=message.destination,
                secret=current,
                also_signed_with=previous,
                message_id=f"msg_{message.id}",
                body=message.payload.encode(),
                allowed=self._config.allowed_networks,
                timeout=self._config.webhook_timeout,
            )
        except ValueError as refused:  # DestinationRefused, or a secret gone bad
            raise _Failed(str(refused), permanent=True) from None
        except DeliveryFailed as failure:
            raise _Failed(
                str(failure),
                permanent=not failure.retryable,
                retry_after=failure.retry_after,
            ) from None

    def _failed(self, message: OutboxMessage, failure: _Failed) -> DeliveryResult:
        fields = {
            "message_id": message.id,
            "ticket_id": message.ticket_id,
            "channel": message.channel,
            "event_type": message.event_type,
            "attempts": message.attempts,
            "error": failure.message,
        }
        if message.channel == WEBHOOK:
            fields["destination"] = message.destination
        if failure.permanent or message.attempts >= self._config.max_attempts:
            log.error("outbox_dead", **fields)
            return DeliveryResult(
                message.id, message.attempts, sent=False, error=failure.message
            )
        delay = retry_delay(message.attempts, self._config.retry_seconds)
        if failure.retry_after is not None:
            delay = min(MAX_RETRY_DELAY_SECONDS, max(delay, failure.retry_after))
        log.warning("outbox_retry", retry_in_seconds=round(delay, 1), **fields)
        return DeliveryResult(
            message.id,
            message.attempts,
            sent=False,
            error=failure.message,
            retry_at_ms=now_ms() + int(delay * 1000),
        )


class _Failed(Exception):
    def __init__(
        self, message: str, *, permanent: bool, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.retry_after = retry_after


class OutboxService:
    """The outbox beside a serving process or in a worker: the dispatcher, when it
    runs here, and the depth figures for logs and ``/readyz``."""

    def __init__(self, settings: Settings, *, dispatch: bool) -> None:
        self._config = DispatchConfig.from_settings(settings)
        self._store = OutboxStore(settings.database_url, pool=settings.pool)
        self._dispatcher = (
            Dispatcher(self._store, self._config, url=settings.database_url)
            if dispatch
            else None
        )
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._depth: OutboxDepth | None = None
        self._depth_at = 0.0

    async def start(self) -> None:
        self._stopping.clear()
        if self._dispatcher is not None:
            self._tasks.append(
                asyncio.create_task(self._dispatcher.run(self._stopping))
            )
        self._tasks.append(asyncio.create_task(self._log_depth()))

    async def stop(self) -> None:
        self._stopping.set()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self._store.close()

    async def wait(self) -> None:
        """Until the service stops or a task of it fails."""
        await asyncio.gather(*self._tasks)

    async def details(self) -> dict[str, Any]:
        """What ``/readyz`` shows of the outbox."""
        details: dict[str, Any] = {
            "dispatcher": self._dispatcher_state(),
            "email": "configured" if self._config.smtp else "not configured",
        }
        try:
            depth = await self._fresh_depth()
        except StorageError:
            return {**details, "depth": "unknown"}
        oldest = depth.oldest_pending_at_ms
        return {
            **details,
            "pending": depth.pending,
            "retrying": depth.retrying,
            "dead": depth.dead,
            "oldestDueSecondsAgo": (
                None if oldest is None else max(0, (now_ms() - oldest) // 1000)
            ),
        }

    def _dispatcher_state(self) -> str:
        if self._dispatcher is None:
            return "off"
        return "running" if self._dispatcher.holding else "standby"

    async def _fresh_depth(self) -> OutboxDepth:
        if (
            self._depth is None
            or time.monotonic() - self._depth_at > DEPTH_FRESH_SECONDS
        ):
            self._depth = await asyncio.to_thread(self._store.depth)
            self._depth_at = time.monotonic()
        return self._depth

    async def _log_depth(self) -> None:
        """Log the outbox's depth every minute while anything waits or died."""
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), DEPTH_LOG_SECONDS)
            if self._stopping.is_set():
                return
            try:
                depth = await self._fresh_depth()
            except StorageError:
                continue
            if depth.pending or depth.dead:
                level = log.warning if depth.dead or depth.retrying else log.info
                level(
                    "outbox_depth",
                    pending=depth.pending,
                    retrying=depth.retrying,
                    dead=depth.dead,
                    email="configured" if self._config.smtp else "not configured",
                )
