"""Sending a composed mail to the SMTP server named by ``HELPLINE_SMTP_URL``.

``send`` blocks, so the dispatcher runs it in a worker thread. Whatever goes
wrong comes back as one exception, ``SendFailed``, whose ``permanent`` flag says
whether trying the same message again later can help.
"""

from __future__ import annotations

import ipaddress
import math
import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Literal
from urllib.parse import SplitResult, parse_qsl, quote, unquote, urlsplit

from helpline.outbox.tls import trusting

SmtpSecurity = Literal["starttls", "tls"]

DEFAULT_TIMEOUT = 10.0
_DEFAULT_PORTS: dict[str, int] = {"smtp": 25, "smtps": 465}
_SECURITY: dict[str, SmtpSecurity] = {"smtp": "starttls", "smtps": "tls"}
_URL_FORM = "smtp://[user[:password]@]host[:port] or smtps://..."
# A server's reply is quoted in error messages; a longer one is cut.
_MAX_REPLY_CHARS = 200


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """How to reach the SMTP server.

    ``security`` is ``"starttls"`` for ``smtp://`` (upgrade with STARTTLS when
    the server offers it, plain otherwise) or ``"tls"`` for ``smtps://``
    (TLS from the first byte). ``timeout`` bounds each network operation, in
    seconds. The password stays out of ``repr``; ``redacted`` is for logs.
    """

    host: str
    port: int
    security: SmtpSecurity
    username: str | None
    password: str | None = field(repr=False)
    timeout: float = DEFAULT_TIMEOUT
    # Certificate authorities trusted beside the public ones (HELPLINE_TLS_CA_FILE).
    ca_file: str | None = None

    def redacted(self) -> str:
        """The settings as a URL, with ``***`` in place of the password."""
        scheme = "smtps" if self.security == "tls" else "smtp"
        user = ""
        if self.username is not None:
            hidden = "" if self.password is None else ":***"
            user = f"{quote(self.username, safe='')}{hidden}@"
        host = f"[{self.host}]" if ":" in self.host else self.host
        query = "" if self.timeout == DEFAULT_TIMEOUT else f"?timeout={self.timeout:g}"
        return f"{scheme}://{user}{host}:{self.port}{query}"


class SendFailed(Exception):
    """The server refused the message or could not be reached.

    ``permanent`` is True when the server answered the recipient or the message
    with a 5xx reply: the same message will never be accepted. It is False for
    connection errors, timeouts, TLS and login failures and 4xx replies, which
    may pass on a later try. The message is one readable line, without the
    password.
    """

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


def smtp_settings(url: str, *, ca_file: str | None = None) -> SmtpSettings:
    """Settings from ``HELPLINE_SMTP_URL``.

    The form is ``smtp://[user[:password]@]host[:port]`` (port 25 by default;
    587 is common) or the same with ``smtps://`` (port 465 by default). The user
    name and password are percent-decoded. An optional ``?timeout=SECONDS``
    sets the timeout. ``ca_file`` names authorities to trust beside the public
    ones. Raises ``ValueError`` naming ``HELPLINE_SMTP_URL`` and saying what is
    wrong.
    """
    parts = urlsplit(url.strip())

    scheme = parts.scheme.lower()
    if scheme not in _SECURITY:
        # Only the scheme is quoted: the rest of the URL may hold a password.
        raise ValueError(
            f"HELPLINE_SMTP_URL must start with smtp:// or smtps://, not "
            f"{scheme + '://' if scheme else 'nothing'}; the form is {_URL_FORM}."
        )
    if not parts.hostname:
        raise ValueError(
            f"HELPLINE_SMTP_URL names no host; the form is {_URL_FORM}, with "
            "characters such as @, : or / in the user name or password "
            "percent-encoded."
        )
    if parts.path not in ("", "/") or parts.fragment:
        raise ValueError(
            f"HELPLINE_SMTP_URL has something after the host and port; the form "
            f"is {_URL_FORM}, with an optional ?timeout=SECONDS."
        )

    username, password = _credentials(parts.username, parts.password)
    return SmtpSettings(
        host=parts.hostname,
        port=_port(parts, scheme),
        security=_SECURITY[scheme],
        username=username,
        password=password,
        timeout=_timeout(parts.query),
        ca_file=ca_file,
    )


def send(message: EmailMessage, settings: SmtpSettings) -> None:
    """Deliver ``message`` to the recipients in its headers, blocking until the
    server has accepted it.

    Over ``smtp://`` the connection switches to TLS when the server offers
    STARTTLS. Certificates are checked as ``ssl.create_default_context`` does,
    trusting the authorities of ``settings.ca_file`` as well. A password is
    sent only over TLS or to a server on this machine. Raises ``SendFailed``
    for every failure.
    """
    client = _connect(settings)
    try:
        _secure(client, settings)
        _log_in(client, settings)
        client.send_message(message)
    except smtplib.SMTPException as error:
        raise _refusal(error, settings) from None
    except OSError as error:
        raise _unreachable(error, settings) from None
    finally:
        _close(client)


def _credentials(
    raw_username: str | None, raw_password: str | None
) -> tuple[str | None, str | None]:
    username = unquote(raw_username) if raw_username else None
    password = unquote(raw_password) if raw_password is not None else None
    if username is None and password is not None:
        raise ValueError(
            "HELPLINE_SMTP_URL has a password but no user name; write "
            "smtp://user:password@host."
        )
    return username, password


def _port(parts: SplitResult, scheme: str) -> int:
    try:
        port = parts.port  # urlsplit raises for text or a number past 65535
    except ValueError:
        raise _bad_port(scheme) from None
    if port is None:
        return _DEFAULT_PORTS[scheme]
    if port == 0:
        raise _bad_port(scheme)
    return port


def _bad_port(scheme: str) -> ValueError:
    return ValueError(
        "HELPLINE_SMTP_URL has a port that is not a number from 1 to 65535; "
        f"leave it out for the default ({_DEFAULT_PORTS[scheme]} for {scheme}://) "
        "or write one such as host:587."
    )


def _timeout(query: str) -> float:
    timeout = DEFAULT_TIMEOUT
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name != "timeout":
            raise ValueError(
                f"HELPLINE_SMTP_URL has the unknown option {name!r}; the only "
                "option is ?timeout=SECONDS."
            )
        try:
            timeout = float(value)
        except ValueError:
            timeout = math.nan
        if not (math.isfinite(timeout) and timeout > 0):
            raise ValueError(
                f"HELPLINE_SMTP_URL has timeout={value!r}; give a number of "
                "seconds greater than 0, such as ?timeout=10."
            )
    return timeout


def _connect(settings: SmtpSettings) -> smtplib.SMTP:
    try:
        if settings.security == "tls":
            return smtplib.SMTP_SSL(
                settings.host,
                settings.port,
                timeout=settings.timeout,
                context=_tls_context(settings),
            )
        return smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
    except smtplib.SMTPException as error:
        raise _refusal(error, settings) from None
    except OSError as error:
        raise _unreachable(error, settings) from None


def _secure(client: smtplib.SMTP, settings: SmtpSettings) -> None:
    client.ehlo()
    # Opportunistic: a server that does not offer STARTTLS gets the mail in
    # plain text, as mail between servers on port 25 travels; a password never
    # does (see _log_in).
    if settings.security == "starttls" and client.has_extn("starttls"):
        client.starttls(context=_tls_context(settings))
        client.ehlo()


def _tls_context(settings: SmtpSettings) -> ssl.SSLContext:
    return trusting(ssl.create_default_context(), settings.ca_file)


def _log_in(client: smtplib.SMTP, settings: SmtpSettings) -> None:
    if settings.username is None:
        return
    encrypted = isinstance(client.sock, ssl.SSLSocket)
    if not encrypted and not _is_loopback(settings.host):
        raise SendFailed(
            f"the SMTP server {settings.host}:{settings.port} did not offer "
            "STARTTLS, so the password was not sent; use smtps:// or a server "
            "that offers STARTTLS.",
            permanent=False,
        )
    client.login(settings.username, settings.password or "")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _close(client: smtplib.SMTP) -> None:
    """Say goodbye; a server that hangs up first changes nothing, since the
    message was either accepted already or has failed."""
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        client.close()


def _refusal(error: smtplib.SMTPException, settings: SmtpSettings) -> SendFailed:
    """``error`` as a ``SendFailed``: permanent only for a 5xx reply to the
    recipient or the message itself."""
    server = f"the SMTP server {settings.host}:{settings.port}"

    # smtplib reports a timeout or reset while waiting for a reply as a
    # disconnection; the network error underneath says more.
    cause = error.__context__
    if isinstance(error, smtplib.SMTPServerDisconnected) and isinstance(cause, OSError):
        return _unreachable(cause, settings)

    if isinstance(error, smtplib.SMTPRecipientsRefused):
        replies = list(error.recipients.values())
        permanent = bool(replies) and all(code >= 500 for code, _ in replies)
        reply = _reply(*replies[0]) if replies else "no reply"
        return SendFailed(
            f"{server} refused the recipient: {reply}", permanent=permanent
        )

    if isinstance(error, smtplib.SMTPResponseException):
        return _answered(error, server)

    return SendFailed(f"{server} failed: {_one_line(str(error))}", permanent=False)


def _answered(error: smtplib.SMTPResponseException, server: str) -> SendFailed:
    """A reply other than to RCPT as a ``SendFailed``, by the command it
    answered."""
    reply = _reply(error.smtp_code, error.smtp_error)
    if isinstance(error, smtplib.SMTPDataError):
        return SendFailed(
            f"{server} refused the message: {reply}", permanent=error.smtp_code >= 500
        )

    # A refused sender or login is the operator's to fix, and every message
    # would fail alike: not a reason to give up on this one.
    if isinstance(error, smtplib.SMTPSenderRefused):
        refused = "refused the sender"
    elif isinstance(error, smtplib.SMTPAuthenticationError):
        refused = "refused the login"
    else:
        refused = "answered"
    return SendFailed(f"{server} {refused}: {reply}", permanent=False)


def _unreachable(error: OSError, settings: SmtpSettings) -> SendFailed:
    server = f"the SMTP server {settings.host}:{settings.port}"
    if isinstance(error, TimeoutError):
        reason = f"no answer within {settings.timeout:g} seconds"
    elif isinstance(error, ssl.SSLError):
        reason = f"TLS failed: {error.reason or error.__class__.__name__}"
    else:
        reason = _one_line(str(error)) or error.__class__.__name__
    return SendFailed(f"could not talk to {server}: {reason}", permanent=False)


def _reply(code: int, text: bytes | str) -> str:
    """A server's reply as one short line, such as ``550 no such user``."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    line = _one_line(f"{code} {text}")
    if len(line) > _MAX_REPLY_CHARS:
        line = line[: _MAX_REPLY_CHARS - 1] + "…"
    return line


def _one_line(text: str) -> str:
    return " ".join(text.split())
