"""Ticket notification mails (issue 7): composing them, and sending them to a real
SMTP server (aiosmtpd) running on 127.0.0.1 in a thread."""

from __future__ import annotations

import email
import email.policy
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from helpline.outbox.mail import (
    MailComposer,
    MailSettings,
    TicketMail,
    mail_settings,
    thread_root_id,
)
from helpline.outbox.smtp import SendFailed, SmtpSettings, send, smtp_settings

from .conftest import server_tls

SENDER = "Example Support <support@example.com>"
ALICE = "alice@customer.example"
BOB = "bob@customer.example"
CREATED = TicketMail(
    kind="created",
    message_number=1,
    ticket_id=123,
    recipient=ALICE,
    ticket_subject="Printer is on fire",
    ticket_body="It started this morning.\nThen it got worse.",
    status="new",
    organization="Acme",
)
REPLIED = replace(
    CREATED,
    kind="replied",
    message_number=2,
    status="pending",
    reply_text="Please unplug it.\nThen wait.",
    replied_by="Ann Agent",
)
SOLVED = replace(CREATED, kind="solved", message_number=3, status="solved")


@dataclass
class Received:
    """One message as the server took it."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    login: bytes | None
    encrypted: bool = False


@dataclass
class Mailbox:
    """An aiosmtpd handler that keeps what it accepts; ``rcpt_reply`` and
    ``data_reply``, when set, are its answers to RCPT and DATA instead."""

    rcpt_reply: str | None = None
    data_reply: str | None = None
    received: list[Received] = field(default_factory=list)

    async def handle_RCPT(  # noqa: N802 - the name aiosmtpd calls
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if self.rcpt_reply is not None:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - the name aiosmtpd calls
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        if self.data_reply is not None:
            return self.data_reply
        content = envelope.original_content or b""
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        login = session.auth_data.login if session.authenticated else None
        self.received.append(
            Received(
                str(envelope.mail_from),
                list(envelope.rcpt_tos),
                message,
                login,
                encrypted=server.transport.get_extra_info("ssl_object") is not None,
            )
        )
        return "250 OK"


def check_password(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth: Any
) -> AuthResult:
    """Accepts the one user ``agent`` with the password ``p@ss:word/1``."""
    good = auth == LoginPassword(b"agent", b"p@ss:word/1")
    # handled=False: aiosmtpd itself answers 235 or 535.
    return AuthResult(success=good, handled=False, auth_data=auth)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


StartServer = Callable[..., tuple[Mailbox, SmtpSettings]]


@pytest.fixture
def start_server() -> Iterator[StartServer]:
    """Starts an SMTP server on 127.0.0.1 with a ``Mailbox`` built from the
    keyword arguments; gives the mailbox and settings that reach it."""
    controllers: list[Controller] = []

    def start(**replies: str) -> tuple[Mailbox, SmtpSettings]:
        mailbox = Mailbox(**replies)
        controller = Controller(
            mailbox,
            hostname="127.0.0.1",
            port=free_port(),
            server_hostname="mail.test",
            authenticator=check_password,
            auth_require_tls=False,
        )
        controller.start()
        controllers.append(controller)
        return mailbox, smtp_settings(f"smtp://127.0.0.1:{controller.port}")

    yield start
    for controller in controllers:
        controller.stop()


@pytest.fixture
def composer() -> MailComposer:
    return MailComposer(mail_settings(SENDER, None))


def plain_text(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert isinstance(part, EmailMessage)
    text: str = part.get_content()
    return text


def html_text(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert isinstance(part, EmailMessage)
    html: str = part.get_content()
    return html


# Sending to a real server


def test_created_mail_arrives_with_its_headers_and_both_parts(
    start_server: StartServer, composer: MailComposer
) -> None:
    mailbox, settings = start_server()

    send(composer.compose(CREATED), settings)

    [received] = mailbox.received
    message = received.message
    assert received.mail_from == "support@example.com"
    assert received.rcpt_tos == [ALICE]
    assert message["From"] == SENDER
    assert message["To"] == ALICE
    assert message["Subject"] == "[Ticket #123] Printer is on fire"
    assert message["Message-ID"] == thread_root_id(123, ALICE, "example.com")
    assert message["X-Helpline-Ticket-Id"] == "123"
    assert message["Date"].datetime.tzinfo is not None
    assert "Then it got worse." in plain_text(message)
    assert "Then it got worse." in html_text(message)


def test_non_ascii_text_survives_the_trip(
    start_server: StartServer, composer: MailComposer
) -> None:
    mailbox, settings = start_server()
    mail = replace(
        CREATED, ticket_subject="Drucker brennt, schnell ✓", ticket_body="Grüße"
    )

    send(composer.compose(mail), settings)

    message = mailbox.received[0].message
    assert message["Subject"] == "[Ticket #123] Drucker brennt, schnell ✓"
    assert "Grüße" in plain_text(message)
    assert "Grüße" in html_text(message)


def test_injected_headers_in_ticket_fields_stay_inside_the_subject(
    start_server: StartServer, composer: MailComposer
) -> None:
    mailbox, settings = start_server()
    mail = replace(
        REPLIED,
        ticket_subject="Hello\r\nBcc: evil@example.com",
        replied_by="Ann\nBcc: evil@example.com",
        organization="Acme\r\nCc: evil@example.com",
    )

    send(composer.compose(mail), settings)

    [received] = mailbox.received
    assert received.rcpt_tos == [ALICE]
    assert received.message.get_all("Subject") == [
        "[Ticket #123] Re: Hello Bcc: evil@example.com"
    ]
    assert received.message["Bcc"] is None
    assert received.message["Cc"] is None


# How mails thread and are identified


def test_reply_and_solved_mails_thread_onto_the_acknowledgement(
    composer: MailComposer,
) -> None:
    root = composer.compose(CREATED)["Message-ID"]

    for mail in (REPLIED, SOLVED):
        message = composer.compose(mail)
        assert message["In-Reply-To"] == root
        assert message["References"] == root


def test_acknowledgement_has_no_in_reply_to(composer: MailComposer) -> None:
    message = composer.compose(CREATED)

    assert message["In-Reply-To"] is None
    assert message["References"] is None


def test_message_ids_differ_between_recipients_and_between_mails(
    composer: MailComposer,
) -> None:
    mails = [CREATED, replace(CREATED, recipient=BOB), REPLIED, SOLVED]
    mails.append(replace(REPLIED, recipient=BOB, message_number=4))

    message_ids = [composer.compose(mail)["Message-ID"] for mail in mails]

    assert len(set(message_ids)) == len(mails)


@pytest.mark.parametrize("mail", [CREATED, REPLIED, SOLVED], ids=lambda m: m.kind)
def test_a_retried_mail_keeps_its_message_id(
    composer: MailComposer, mail: TicketMail
) -> None:
    first = composer.compose(mail)["Message-ID"]
    retried = composer.compose(mail)["Message-ID"]

    assert first == retried
    assert first.endswith("@example.com>")


def test_thread_root_ignores_the_case_of_the_address() -> None:
    lower = thread_root_id(123, "alice@customer.example", "example.com")

    assert thread_root_id(123, "Alice@Customer.Example", "example.com") == lower
    assert lower.startswith("<ticket-123.")
    assert "alice" not in lower


def test_message_id_domain_comes_from_the_sender_lowercased() -> None:
    composer = MailComposer(MailSettings(sender="help@Support.Example.ORG"))

    message = composer.compose(REPLIED)

    assert message["Message-ID"] == "<ticket-123.msg-2@support.example.org>"


# Headers


@pytest.mark.parametrize(
    ("mail", "subject"),
    [
        (CREATED, "[Ticket #123] Printer is on fire"),
        (REPLIED, "[Ticket #123] Re: Printer is on fire"),
        (SOLVED, "[Ticket #123] Solved: Printer is on fire"),
        (replace(CREATED, ticket_subject=None), "[Ticket #123] Your support request"),
        (
            replace(SOLVED, ticket_subject="  "),
            "[Ticket #123] Solved: Your support request",
        ),
        (replace(CREATED, ticket_subject=" a \t b\x00c "), "[Ticket #123] a b c"),
    ],
)
def test_subject_carries_the_ticket_tag(
    composer: MailComposer, mail: TicketMail, subject: str
) -> None:
    assert composer.compose(mail)["Subject"] == subject


def test_a_long_subject_is_cut(composer: MailComposer) -> None:
    mail = replace(CREATED, ticket_subject="word " * 100)

    subject = composer.compose(mail)["Subject"]

    assert subject.startswith("[Ticket #123] word word")
    assert subject.endswith("…")
    assert len(subject) <= 220


@pytest.mark.parametrize(
    ("mail", "auto_submitted"),
    [(CREATED, "auto-generated"), (REPLIED, None), (SOLVED, "auto-generated")],
    ids=["created", "replied", "solved"],
)
def test_only_mails_without_a_human_author_are_auto_submitted(
    composer: MailComposer, mail: TicketMail, auto_submitted: str | None
) -> None:
    assert composer.compose(mail)["Auto-Submitted"] == auto_submitted


@pytest.mark.parametrize(
    "recipient",
    [
        "alice@customer.example, evil@example.com",
        "alice@customer.example;evil@example.com",
        "alice@customer.example\r\nBcc: evil@example.com",
        "alice@customer.example\nevil@example.com",
        "alice@customer.example evil@example.com",
        "not an address",
        "",
    ],
)
def test_a_recipient_that_is_not_one_address_is_refused(
    composer: MailComposer, recipient: str
) -> None:
    with pytest.raises(ValueError, match="not one email address"):
        composer.compose(replace(CREATED, recipient=recipient))


def test_a_recipient_with_a_display_name_gets_the_bare_address(
    composer: MailComposer,
) -> None:
    message = composer.compose(replace(CREATED, recipient="Alice <alice@x.example>"))

    assert message["To"] == "alice@x.example"


# The parts


def test_html_part_escapes_ticket_text_and_keeps_line_breaks(
    composer: MailComposer,
) -> None:
    script = "<script>alert(1)</script>"
    mail = replace(
        REPLIED,
        ticket_subject=script,
        reply_text=f"{script}\nsecond line",
        replied_by=script,
    )

    html = html_text(composer.compose(mail))

    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "white-space: pre-wrap" in html
    assert "&lt;/script&gt;\nsecond line" in html


def test_text_part_is_not_escaped(composer: MailComposer) -> None:
    mail = replace(CREATED, ticket_body="if a < b && c > d")

    assert "if a < b && c > d" in plain_text(composer.compose(mail))


@pytest.mark.parametrize(
    ("mail", "expected"),
    [
        (CREATED, ["#123", "received", "It started this morning."]),
        (REPLIED, ["#123", "Ann Agent", "Please unplug it.", "pending"]),
        (SOLVED, ["#123", "solved", "new ticket", "[Ticket #123]"]),
    ],
    ids=["created", "replied", "solved"],
)
def test_each_kind_says_what_happened(
    composer: MailComposer, mail: TicketMail, expected: list[str]
) -> None:
    message = composer.compose(mail)

    for part in (plain_text(message), html_text(message)):
        for phrase in expected:
            assert phrase in part


def test_body_line_endings_become_line_feeds(composer: MailComposer) -> None:
    mail = replace(CREATED, ticket_body="one\r\ntwo\rthree")

    assert "one\ntwo\nthree" in plain_text(composer.compose(mail))


# Templates


def test_one_overridden_template_leaves_the_others_default(
    composer: MailComposer, tmp_path: Path
) -> None:
    (tmp_path / "ticket_created.txt").write_text("Got it: {{ ticket_tag }}\n")
    custom = MailComposer(mail_settings(SENDER, str(tmp_path)))

    message = custom.compose(CREATED)

    assert plain_text(message) == "Got it: [Ticket #123]\n"
    assert html_text(message) == html_text(composer.compose(CREATED))


@pytest.mark.parametrize(
    "template",
    ["{{ ticket_tag", "{{ no_such_field }}", "{% include 'missing.txt' %}"],
    ids=["syntax", "undefined", "missing include"],
)
def test_a_broken_template_fails_naming_it(tmp_path: Path, template: str) -> None:
    (tmp_path / "ticket_solved.txt").write_text(template)
    composer = MailComposer(mail_settings(SENDER, str(tmp_path)))

    with pytest.raises(ValueError, match=r"mail template ticket_solved\.txt"):
        composer.compose(SOLVED)


# Mail settings


@pytest.mark.parametrize(
    "sender",
    [
        "",
        "   ",
        "support",
        "support@example.com, other@example.com",
        "support@example.com\r\nBcc: evil@example.com",
    ],
)
def test_a_sender_that_is_not_one_address_is_refused(sender: str) -> None:
    with pytest.raises(ValueError, match="HELPLINE_MAIL_FROM"):
        mail_settings(sender, None)


def test_a_missing_templates_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="HELPLINE_MAIL_TEMPLATES"):
        mail_settings(SENDER, str(tmp_path / "nowhere"))


def test_an_empty_templates_setting_means_the_defaults() -> None:
    assert mail_settings(f" {SENDER} ", "") == MailSettings(sender=SENDER)


# SMTP settings

HOST = "mail.example.com"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example.com", SmtpSettings(HOST, 25, "starttls", None, None)),
        (
            "smtp://mail.example.com:587",
            SmtpSettings(HOST, 587, "starttls", None, None),
        ),
        ("smtps://mail.example.com", SmtpSettings(HOST, 465, "tls", None, None)),
        ("SMTPS://Mail.Example.com:2465/", SmtpSettings(HOST, 2465, "tls", None, None)),
        ("smtp://agent@[::1]:25", SmtpSettings("::1", 25, "starttls", "agent", None)),
        (
            "smtp://me%40example.com:p%40ss%3Aword%2F1@mail.example.com:587",
            SmtpSettings(HOST, 587, "starttls", "me@example.com", "p@ss:word/1"),
        ),
        (
            "smtps://agent:secret@mail.example.com?timeout=2.5",
            SmtpSettings(HOST, 465, "tls", "agent", "secret", timeout=2.5),
        ),
    ],
)
def test_smtp_url_is_parsed(url: str, expected: SmtpSettings) -> None:
    assert smtp_settings(url) == expected


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://mail.example.com", "smtp:// or smtps://"),
        ("mail.example.com:25", "smtp:// or smtps://"),
        ("", "smtp:// or smtps://"),
        ("smtp://", "no host"),
        ("smtp://agent:secret@", "no host"),
        ("smtp://mail.example.com:twentyfive", "port"),
        ("smtp://mail.example.com:70000", "port"),
        ("smtp://mail.example.com:0", "port"),
        ("smtp://mail.example.com/inbox", "after the host"),
        ("smtp://mail.example.com?retries=3", "unknown option"),
        ("smtp://mail.example.com?timeout=-1", "timeout"),
        ("smtp://mail.example.com?timeout=soon", "timeout"),
        ("smtp://:secret@mail.example.com", "no user name"),
    ],
)
def test_a_bad_smtp_url_is_refused_with_the_reason(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match="HELPLINE_SMTP_URL") as raised:
        smtp_settings(url)

    assert problem in str(raised.value)
    assert "secret" not in str(raised.value)


def test_redacted_url_and_repr_hide_the_password() -> None:
    settings = smtp_settings("smtp://me%40example.com:secret@mail.example.com:587")

    assert settings.redacted() == "smtp://me%40example.com:***@mail.example.com:587"
    assert "secret" not in repr(settings)


def test_redacted_url_shows_a_changed_timeout() -> None:
    settings = smtp_settings("smtps://mail.example.com?timeout=3")

    assert settings.redacted() == "smtps://mail.example.com:465?timeout=3"


# Failures


def test_a_port_where_nothing_listens_fails_for_now(composer: MailComposer) -> None:
    settings = smtp_settings(f"smtp://127.0.0.1:{free_port()}?timeout=2")

    with pytest.raises(SendFailed) as raised:
        send(composer.compose(CREATED), settings)

    assert raised.value.permanent is False
    assert f"127.0.0.1:{settings.port}" in str(raised.value)


def test_a_server_that_never_answers_times_out(composer: MailComposer) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        settings = smtp_settings(f"smtp://127.0.0.1:{port}?timeout=0.3")

        with pytest.raises(
            SendFailed, match=r"no answer within 0\.3 seconds"
        ) as raised:
            send(composer.compose(CREATED), settings)

    assert raised.value.permanent is False


@pytest.mark.parametrize(
    ("replies", "permanent"),
    [
        ({"rcpt_reply": "550 no such user"}, True),
        ({"rcpt_reply": "451 try again later"}, False),
        ({"data_reply": "554 message rejected"}, True),
        ({"data_reply": "452 mailbox full"}, False),
    ],
    ids=["rcpt 550", "rcpt 451", "data 554", "data 452"],
)
def test_a_refusal_is_permanent_only_for_a_5xx_reply(
    start_server: StartServer,
    composer: MailComposer,
    replies: dict[str, str],
    permanent: bool,
) -> None:
    mailbox, settings = start_server(**replies)

    with pytest.raises(SendFailed) as raised:
        send(composer.compose(CREATED), settings)

    assert raised.value.permanent is permanent
    assert next(iter(replies.values())) in str(raised.value)
    assert mailbox.received == []


def test_login_with_the_right_password_delivers(
    start_server: StartServer, composer: MailComposer
) -> None:
    mailbox, server = start_server()
    settings = smtp_settings(f"smtp://agent:p%40ss%3Aword%2F1@127.0.0.1:{server.port}")

    send(composer.compose(CREATED), settings)

    assert [received.login for received in mailbox.received] == [b"agent"]
    # To a server on this machine that offers no STARTTLS, in plain text.
    assert [received.encrypted for received in mailbox.received] == [False]


def test_login_with_a_wrong_password_fails_for_now(
    start_server: StartServer, composer: MailComposer
) -> None:
    mailbox, server = start_server()
    settings = smtp_settings(f"smtp://agent:wrong@127.0.0.1:{server.port}")

    with pytest.raises(SendFailed, match="refused the login") as raised:
        send(composer.compose(CREATED), settings)

    assert raised.value.permanent is False
    assert "wrong" not in str(raised.value)
    assert mailbox.received == []


# --- TLS, checked against the operator's own authority (HELPLINE_TLS_CA_FILE) -------

StartTlsServer = Callable[[str], tuple[Mailbox, int]]


@pytest.fixture
def start_tls_server(authority: trustme.CA) -> Iterator[StartTlsServer]:
    """Starts an SMTP server on 127.0.0.1 with a certificate that ``authority``
    issued for that address: ``starttls`` (offered, and required before mail)
    or ``tls`` (TLS from the first byte, as smtps:// speaks). Gives its mailbox
    and port."""
    controllers: list[Controller] = []

    def start(security: str) -> tuple[Mailbox, int]:
        context = server_tls(authority, "127.0.0.1")
        options: dict[str, Any] = (
            {"tls_context": context, "require_starttls": True}
            if security == "starttls"
            else {"ssl_context": context}
        )
        mailbox = Mailbox()
        controller = Controller(
            mailbox,
            hostname="127.0.0.1",
            port=free_port(),
            server_hostname="mail.test",
            **options,
        )
        controller.start()
        controllers.append(controller)
        return mailbox, controller.port

    yield start
    for controller in controllers:
        controller.stop()


@pytest.mark.parametrize(
    ("scheme", "security"), [("smtp", "starttls"), ("smtps", "tls")]
)
def test_mail_goes_over_tls_to_a_server_the_operators_authority_vouches_for(
    start_tls_server: StartTlsServer,
    ca_file: str,
    composer: MailComposer,
    scheme: str,
    security: str,
) -> None:
    mailbox, port = start_tls_server(security)

    send(
        composer.compose(CREATED),
        smtp_settings(f"{scheme}://127.0.0.1:{port}", ca_file=ca_file),
    )

    assert [received.encrypted for received in mailbox.received] == [True]


@pytest.mark.parametrize(
    ("scheme", "security"), [("smtp", "starttls"), ("smtps", "tls")]
)
def test_mail_is_not_sent_to_a_certificate_no_trusted_authority_issued(
    start_tls_server: StartTlsServer,
    composer: MailComposer,
    scheme: str,
    security: str,
) -> None:
    mailbox, port = start_tls_server(security)

    with pytest.raises(SendFailed) as raised:
        send(composer.compose(CREATED), smtp_settings(f"{scheme}://127.0.0.1:{port}"))

    assert "TLS failed: CERTIFICATE_VERIFY_FAILED" in str(raised.value)
    assert raised.value.permanent is False
    assert mailbox.received == []
