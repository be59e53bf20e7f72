"""Settings, read once from the environment (``HELPLINE_*``) and command-line flags.

Every setting has a documented default, so an empty environment serves.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TypeVar

from helpline.domain.tickets import TicketRules
from helpline.storage.engine import DEFAULT_DATABASE_URL, PoolSettings

N = TypeVar("N", int, float)
_POOL = PoolSettings()


class ConfigError(ValueError):
    """A setting has a value Helpline cannot use; the message names it."""


@dataclass(frozen=True, slots=True)
class Settings:
    """What a serving process runs with, each from a ``HELPLINE_*`` variable.

    ``max_file_bytes`` (``HELPLINE_MAX_FILE_BYTES``, 25 MiB) is the largest file
    ``ticketWithFile`` accepts; the other parts of its body stay within
    ``max_body_bytes``. ``blob_dir`` (``HELPLINE_BLOB_DIR``) is the directory that
    holds uploaded files; None keeps them beside the SQLite file, in
    ``<database file name>.files/``; with PostgreSQL it must be set, to a
    directory every node shares. ``key_cache_seconds``
    (``HELPLINE_KEY_CACHE_SECONDS``) is how long a node remembers an API key it
    looked up, and so how long a revoked key may still work. ``trusted_proxies``
    (``HELPLINE_TRUSTED_PROXIES``, comma-separated addresses or CIDR ranges) are
    the proxies whose ``X-Forwarded-For`` and ``X-Forwarded-Proto`` the console
    believes. ``db_pool_size``,
    ``db_connect_timeout`` and ``db_statement_timeout`` (seconds) shape a
    PostgreSQL node's connection pool.

    The outbox: ``smtp_url`` (``HELPLINE_SMTP_URL``, ``smtp://`` or ``smtps://``)
    and ``mail_from`` (``HELPLINE_MAIL_FROM``) send mail; without them mails wait
    in the outbox. ``mail_templates`` (``HELPLINE_MAIL_TEMPLATES``) is a directory
    of templates that replace the built-in ones by name. Webhooks are refused for
    private and loopback addresses outside ``webhook_allowed_networks``
    (``HELPLINE_WEBHOOK_ALLOWED_NETWORKS``), and each call gets
    ``webhook_timeout`` seconds (``HELPLINE_WEBHOOK_TIMEOUT``). ``tls_ca_file``
    (``HELPLINE_TLS_CA_FILE``) is a PEM file of certificate authorities trusted,
    beside the public ones, by SMTP over TLS and https webhooks. A failed delivery
    is tried again after about ``outbox_retry_seconds``
    (``HELPLINE_OUTBOX_RETRY_SECONDS``), doubling each time, until
    ``outbox_max_attempts`` (``HELPLINE_OUTBOX_MAX_ATTEMPTS``) make it dead. A
    dispatcher holds a message for ``outbox_lease_seconds``
    (``HELPLINE_OUTBOX_LEASE_SECONDS``) before another may take it over, and looks
    for work every ``outbox_poll_seconds`` (``HELPLINE_OUTBOX_POLL_SECONDS``).
    ``dispatcher`` (``HELPLINE_DISPATCHER``, ``on`` or ``off``) says whether
    ``helpline serve`` delivers, or leaves it to ``helpline worker`` processes.
    """

    database_url: str = DEFAULT_DATABASE_URL
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 1024 * 1024
    max_file_bytes: int = 25 * 1024 * 1024
    blob_dir: str | None = None
    rate_limit_per_second: float = 50.0
    rate_limit_burst: int = 100
    max_pending_writes: int = 10_000
    key_cache_seconds: float = 2.0
    trusted_proxies: tuple[str, ...] = ()
    db_pool_size: int = _POOL.size
    db_connect_timeout: float = _POOL.connect_timeout
    db_statement_timeout: float = _POOL.statement_timeout
    log_format: str = "json"
    ticket_rules: TicketRules = field(default_factory=TicketRules)
    smtp_url: str | None = None
    mail_from: str | None = None
    mail_templates: str | None = None
    webhook_allowed_networks: tuple[str, ...] = ()
    webhook_timeout: float = 10.0
    tls_ca_file: str | None = None
    outbox_retry_seconds: float = 15.0
    outbox_max_attempts: int = 12
    outbox_lease_seconds: float = 30.0
    outbox_poll_seconds: float = 1.0
    dispatcher: bool = True

    @property
    def pool(self) -> PoolSettings:
        return PoolSettings(
            size=self.db_pool_size,
            connect_timeout=self.db_connect_timeout,
            statement_timeout=self.db_statement_timeout,
        )

    def with_overrides(self, **changes: object) -> Settings:
        """A copy with the given settings changed; None means "keep the current"."""
        given = {name: value for name, value in changes.items() if value is not None}
        return replace(self, **given)  # type: ignore[arg-type]


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from ``environ`` (the process environment by default).

    Raises ``ConfigError`` naming the variable whose value cannot be used.
    """
    env = os.environ if environ is None else environ
    defaults = Settings()
    rules = TicketRules(
        product_types=_names(env, "HELPLINE_PRODUCT_TYPES"),
        service_types=_names(env, "HELPLINE_SERVICE_TYPES"),
        console_access_hours=_number(
            env, "HELPLINE_CONSOLE_ACCESS_HOURS", TicketRules().console_access_hours
        ),
    )
    log_format = env.get("HELPLINE_LOG_FORMAT", defaults.log_format)
    if log_format not in ("json", "console"):
        raise ConfigError("HELPLINE_LOG_FORMAT must be json or console")
    dispatcher = env.get("HELPLINE_DISPATCHER", "on").strip().lower() or "on"
    if dispatcher not in ("on", "off"):
        raise ConfigError("HELPLINE_DISPATCHER must be on or off")
    return Settings(
        database_url=env.get("HELPLINE_DATABASE_URL", defaults.database_url),
        host=env.get("HELPLINE_HOST", defaults.host),
        port=_number(env, "HELPLINE_PORT", defaults.port),
        max_body_bytes=_number(env, "HELPLINE_MAX_BODY_BYTES", defaults.max_body_bytes),
        max_file_bytes=_number(env, "HELPLINE_MAX_FILE_BYTES", defaults.max_file_bytes),
        blob_dir=env.get("HELPLINE_BLOB_DIR", "").strip() or defaults.blob_dir,
        rate_limit_per_second=_number(
            env,
            "HELPLINE_RATE_LIMIT_PER_SECOND",
            defaults.rate_limit_per_second,
            kind=float,
        ),
        rate_limit_burst=_number(
            env, "HELPLINE_RATE_LIMIT_BURST", defaults.rate_limit_burst
        ),
        max_pending_writes=_number(
            env, "HELPLINE_MAX_PENDING_WRITES", defaults.max_pending_writes
        ),
        trusted_proxies=_networks(env, "HELPLINE_TRUSTED_PROXIES"),
        key_cache_seconds=_number(
            env, "HELPLINE_KEY_CACHE_SECONDS", defaults.key_cache_seconds, kind=float
        ),
        db_pool_size=_number(env, "HELPLINE_DB_POOL_SIZE", defaults.db_pool_size),
        db_connect_timeout=_number(
            env, "HELPLINE_DB_CONNECT_TIMEOUT", defaults.db_connect_timeout, kind=float
        ),
        db_statement_timeout=_number(
            env,
            "HELPLINE_DB_STATEMENT_TIMEOUT",
            defaults.db_statement_timeout,
            kind=float,
        ),
        log_format=log_format,
        ticket_rules=rules,
        smtp_url=_text(env, "HELPLINE_SMTP_URL"),
        mail_from=_text(env, "HELPLINE_MAIL_FROM"),
        mail_templates=_text(env, "HELPLINE_MAIL_TEMPLATES"),
        webhook_allowed_networks=_networks(env, "HELPLINE_WEBHOOK_ALLOWED_NETWORKS"),
        webhook_timeout=_number(
            env, "HELPLINE_WEBHOOK_TIMEOUT", defaults.webhook_timeout, kind=float
        ),
        tls_ca_file=_text(env, "HELPLINE_TLS_CA_FILE"),
        outbox_retry_seconds=_number(
            env,
            "HELPLINE_OUTBOX_RETRY_SECONDS",
            defaults.outbox_retry_seconds,
            kind=float,
        ),
        outbox_max_attempts=max(
            1,
            _number(env, "HELPLINE_OUTBOX_MAX_ATTEMPTS", defaults.outbox_max_attempts),
        ),
        outbox_lease_seconds=_number(
            env,
            "HELPLINE_OUTBOX_LEASE_SECONDS",
            defaults.outbox_lease_seconds,
            kind=float,
        ),
        outbox_poll_seconds=_number(
            env,
            "HELPLINE_OUTBOX_POLL_SECONDS",
            defaults.outbox_poll_seconds,
            kind=float,
        ),
        dispatcher=dispatcher == "on",
    )


def _text(env: Mapping[str, str], name: str) -> str | None:
    return env.get(name, "").strip() or None


def _number(env: Mapping[str, str], name: str, default: N, *, kind: type[N] = int) -> N:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {raw!r}") from None
    if value < 0:
        raise ConfigError(f"{name} must not be negative, not {raw!r}")
    return value


def _names(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    raw = env.get(name, "")
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _networks(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Comma-separated addresses or CIDR ranges, each checked."""
    networks = _names(env, name)
    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ConfigError(
                f"{name} must list addresses or CIDR ranges, not {network!r}"
            ) from None
    return networks
