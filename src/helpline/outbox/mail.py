"""Ticket notification mails: what each event says, to whom, and how it threads.

Composing is pure and blocking-free: one ``TicketMail`` gives one
``EmailMessage``, the same on every retry except for its ``Date``. Sending it is
the job of ``helpline.outbox.smtp``.

Every mail about a ticket threads onto the acknowledgement its recipient got
when the ticket was created (``thread_root_id``), so a mail client shows one
conversation per ticket.
"""

from __future__ import annotations

import email.utils
import hashlib
import re
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal

import jinja2

MailKind = Literal["created", "replied", "solved"]

# Long enough for any subject a person writes; a longer one is cut so that the
# header stays readable in every mail client.
MAX_SUBJECT_CHARS = 200
DEFAULT_SUBJECT = "Your support request"
_SUBJECT_PREFIX: dict[MailKind, str] = {
    "created": "",
    "replied": "Re: ",
    "solved": "Solved: ",
}
# A human wrote the reply, so it is not "auto-replied"; the other two are sent
# by the system alone (RFC 3834).
_AUTO_SUBMITTED: dict[MailKind, str | None] = {
    "created": "auto-generated",
    "replied": None,
    "solved": "auto-generated",
}
# The C0 and C1 controls, DEL and the Unicode line and paragraph separators.
# None belongs in a header, where CR or LF would start a new one.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# In a body, the same except tab and line feed, which keep their meaning.
_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_ADDRESS = re.compile(r"[^@\s<>\"]+@[^@\s<>\"]+")
_RECIPIENT_SEPARATORS = re.compile(r"[,;\r\n]")
_DEFAULT_TEMPLATES = ("helpline.outbox", "templates")


@dataclass(frozen=True, slots=True)
class TicketMail:
    """One mail to one recipient about one ticket event.

    ``message_number`` is the outbox row's id, so the mail's ``Message-ID``
    stays the same when a failed delivery is tried again. ``reply_text`` and
    ``replied_by`` are the agent's public reply and display name, for kind
    ``"replied"``.
    """

    kind: MailKind
    message_number: int
    ticket_id: int
    recipient: str
    ticket_subject: str | None
    ticket_body: str | None
    status: str
    reply_text: str | None = None
    replied_by: str | None = None
    organization: str | None = None


@dataclass(frozen=True, slots=True)
class MailSettings:
    """Where mails come from and which templates they use.

    ``sender`` (``HELPLINE_MAIL_FROM``) is an address, optionally with a display
    name. Each file in ``templates_dir`` (``HELPLINE_MAIL_TEMPLATES``) replaces
    the default template of the same name; the others stay the defaults.
    """

    sender: str
    templates_dir: Path | None = None


def mail_settings(sender: str, templates_dir: str | None) -> MailSettings:
    """Settings from the two variables' values; an empty ``templates_dir`` means
    none.

    Raises ``ValueError`` naming ``HELPLINE_MAIL_FROM`` when ``sender`` is not
    one email address, or ``HELPLINE_MAIL_TEMPLATES`` when the directory does
    not exist.
    """
    sender_domain(sender)

    if not templates_dir:
        return MailSettings(sender=sender.strip())

    directory = Path(templates_dir)
    if not directory.is_dir():
        raise ValueError(
            f"HELPLINE_MAIL_TEMPLATES is {templates_dir!r}, which is not a "
            "directory; point it to a directory of template files, or unset it "
            "to use the default templates."
        )
    return MailSettings(sender=sender.strip(), templates_dir=directory)


def sender_domain(sender: str) -> str:
    """The domain of the ``HELPLINE_MAIL_FROM`` address, in ASCII, lowercased:
    the right-hand side of every ``Message-ID`` Helpline makes.

    Raises ``ValueError`` naming ``HELPLINE_MAIL_FROM`` when ``sender`` is not
    one email address.
    """
    how_to_fix = (
        "set it to the address notifications come from, such as "
        "support@example.com or 'Example Support <support@example.com>'."
    )
    if not sender.strip():
        raise ValueError(f"HELPLINE_MAIL_FROM is not set; {how_to_fix}")

    address = _only_address(sender)
    if address is None:
        raise ValueError(
            f"HELPLINE_MAIL_FROM is {_one_line(sender)!r}, which is not one email "
            f"address; {how_to_fix}"
        )

    domain = address.rpartition("@")[2].lower()
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValueError(
            f"HELPLINE_MAIL_FROM has the domain {domain!r}, which is not a valid "
            f"domain name; {how_to_fix}"
        ) from None


def thread_root_id(ticket_id: int, recipient: str, domain: str) -> str:
    """The ``Message-ID`` of the acknowledgement sent to ``recipient`` when
    ticket ``ticket_id`` was created, which later mails to them refer to.

    The address appears only as a hash, so a forwarded mail does not reveal it,
    and its case does not matter.
    """
    digest = hashlib.sha256(recipient.strip().lower().encode("utf-8")).hexdigest()
    return f"<ticket-{ticket_id}.{digest[:16]}@{domain}>"


class MailComposer:
    """Turns ticket events into mails; built once, since it loads the templates'
    environment once.

    Raises ``ValueError`` if ``settings.sender`` is not one email address.
    """

    def __init__(self, settings: MailSettings) -> None:
        self._sender = _one_line(settings.sender)
        self._domain = sender_domain(settings.sender)
        self._templates = _template_environment(settings.templates_dir)

    def compose(self, mail: TicketMail) -> EmailMessage:
        """The mail for ``mail``: a plain-text and an HTML part, UTF-8.

        Raises ``ValueError`` when the recipient is not exactly one address, or
        when a template cannot be rendered (the message names it); either fails
        alike on every try, until the data or the template changes.
        """
        recipient = _single_recipient(mail.recipient)
        context = _template_context(mail, recipient)

        text = self._render(f"ticket_{mail.kind}.txt", context)
        html = self._render(f"ticket_{mail.kind}.html", context)

        message = EmailMessage()
        for name, value in self._headers(mail, recipient):
            message[name] = value
        # Quoted-printable keeps every line short and 7-bit, whatever the ticket
        # says and whether or not the server takes 8-bit mail.
        message.set_content(text, cte="quoted-printable")
        message.add_alternative(html, subtype="html", cte="quoted-printable")
        return message

    def _headers(self, mail: TicketMail, recipient: str) -> list[tuple[str, str]]:
        root_id = thread_root_id(mail.ticket_id, recipient, self._domain)
        headers = [
            ("From", self._sender),
            ("To", recipient),
            ("Date", email.utils.formatdate(localtime=False, usegmt=True)),
            ("Subject", _subject(mail)),
        ]

        if mail.kind == "created":
            headers.append(("Message-ID", root_id))
        else:
            headers += [
                ("Message-ID", self._later_message_id(mail)),
                ("In-Reply-To", root_id),
                ("References", root_id),
            ]

        auto_submitted = _AUTO_SUBMITTED[mail.kind]
        if auto_submitted is not None:
            headers.append(("Auto-Submitted", auto_submitted))
        headers.append(("X-Helpline-Ticket-Id", str(mail.ticket_id)))
        return headers

    def _later_message_id(self, mail: TicketMail) -> str:
        """The ``Message-ID`` of a mail after the acknowledgement, made from its
        outbox message: each recipient has a message of their own, and a retry
        sends the same one again."""
        return f"<ticket-{mail.ticket_id}.msg-{mail.message_number}@{self._domain}>"

    def _render(self, name: str, context: dict[str, Any]) -> str:
        try:
            return self._templates.get_template(name).render(context)
        except jinja2.TemplateSyntaxError as error:
            raise ValueError(
                f"mail template {error.name or name} has a syntax error on line "
                f"{error.lineno}: {error.message}"
            ) from error
        except jinja2.TemplateError as error:
            raise ValueError(
                f"mail template {name} could not be rendered: {error.message}"
            ) from error


def ticket_tag(ticket_id: int) -> str:
    """The tag that starts every subject about a ticket, ``[Ticket #123]``."""
    return f"[Ticket #{ticket_id}]"


def _one_line(value: str | None) -> str:
    """``value`` made safe for a header: each control character, CR and LF
    included, becomes a space, runs of whitespace become one space, and the ends
    are trimmed. None gives ``""``."""
    if value is None:
        return ""
    return " ".join(_CONTROL.sub(" ", value).split())


def _subject(mail: TicketMail) -> str:
    text = _one_line(mail.ticket_subject) or DEFAULT_SUBJECT
    if len(text) > MAX_SUBJECT_CHARS:
        text = text[: MAX_SUBJECT_CHARS - 1].rstrip() + "…"
    return f"{ticket_tag(mail.ticket_id)} {_SUBJECT_PREFIX[mail.kind]}{text}"


def _single_recipient(recipient: str) -> str:
    """The bare address in ``recipient``; raises ``ValueError`` unless it holds
    exactly one, since each recipient gets a mail of their own."""
    address = None
    if not _RECIPIENT_SEPARATORS.search(recipient):
        address = _only_address(recipient)
    if address is None:
        # The address itself stays out of the message, which may be logged.
        raise ValueError(
            "the recipient is not one email address: it is empty, malformed or "
            "holds several (a comma, semicolon or line break); each mail goes to "
            "a single address."
        )
    return address


def _only_address(value: str) -> str | None:
    """The address in ``value`` if it holds exactly one, else None."""
    if _CONTROL.search(value):
        return None
    parsed = email.utils.getaddresses([value])
    if len(parsed) != 1:
        return None
    address = parsed[0][1]
    return address if _ADDRESS.fullmatch(address) else None


def _multi_line(value: str | None) -> str | None:
    """A body with ``\\n`` line endings and no control characters but tab."""
    if value is None:
        return None
    lines = value.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL_IN_TEXT.sub(" ", lines)


def _template_context(mail: TicketMail, recipient: str) -> dict[str, Any]:
    """The ``TicketMail`` fields as templates see them, with one-line values
    cleaned like headers, plus ``ticket_tag``."""
    return {
        "kind": mail.kind,
        "message_number": mail.message_number,
        "ticket_id": mail.ticket_id,
        "recipient": recipient,
        "ticket_subject": _one_line(mail.ticket_subject) or None,
        "ticket_body": _multi_line(mail.ticket_body),
        "status": _one_line(mail.status),
        "reply_text": _multi_line(mail.reply_text),
        "replied_by": _one_line(mail.replied_by) or None,
        "organization": _one_line(mail.organization) or None,
        "ticket_tag": ticket_tag(mail.ticket_id),
    }


def _template_environment(templates_dir: Path | None) -> jinja2.Environment:
    """Templates from ``templates_dir`` first, then the packaged defaults; HTML
    templates escape every value, text templates none."""
    loaders: list[jinja2.BaseLoader] = []
    if templates_dir is not None:
        loaders.append(jinja2.FileSystemLoader(templates_dir))
    loaders.append(jinja2.PackageLoader(*_DEFAULT_TEMPLATES))

    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
