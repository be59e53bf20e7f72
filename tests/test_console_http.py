"""The agents' console over real HTTP: signing in and out, the queue, a ticket's
page and the actions on it, downloads, and the headers every page carries.

Pages are read as HTML text; the element ids and names asserted here are the
contract the browser tests rely on too.
"""

from __future__ import annotations

import html
import json
import os
import re
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from helpline.domain.agents import Agent
from helpline.domain.tickets import TicketStatus
from helpline.storage.console import ConsoleStore
from helpline.storage.engine import sqlite_file
from helpline.storage.schema import console_sessions

from .conftest import (
    PASSWORD,
    VALID_REQUEST,
    Credentials,
    LiveServer,
    MakeKey,
    StartServer,
    create_agent,
)
from .test_rma import VALID_RMA

WRONG_CREDENTIALS = "Wrong email or password."
PAGE_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SCRIPT = "<script>alert(1)</script>"
ESCAPED_SCRIPT = "&lt;script&gt;alert(1)&lt;/script&gt;"
MIB = 1024 * 1024


# Agents, tickets and a browser


def now_ms() -> int:
    return int(time.time() * 1000)


def new_ticket(server: LiveServer, credentials: Credentials, **changes: Any) -> int:
    """A ticket made through the API, with ``VALID_REQUEST`` changed by
    ``changes``; returns its id."""
    response = httpx.post(
        server.url + "/api/help/ticket",
        json={**VALID_REQUEST, **changes},
        headers=credentials.headers(),
    )
    body = response.json()
    assert body["success"], body
    ticket_id: int = body["ticketId"]
    return ticket_id


class Browser:
    """An agent's browser: keeps cookies, follows no redirects, and sends each
    form with the CSRF token of the page it came from."""

    def __init__(self, server: LiveServer, **headers: str) -> None:
        self.client = httpx.Client(
            base_url=server.url, timeout=10, headers=headers, follow_redirects=False
        )

    def close(self) -> None:
        self.client.close()

    def get(self, path: str, **params: str) -> httpx.Response:
        return self.client.get(path, params=params)

    def sign_in(
        self, email: str = "ann@example.com", password: str = PASSWORD
    ) -> httpx.Response:
        form = self.client.get("/console/login")
        # Sent by hand: behind an HTTPS proxy the cookie is Secure, and this
        # client, speaking plain HTTP to the proxy's side, would keep it back.
        login_cookie = f"helpline_login_csrf={form.cookies['helpline_login_csrf']}"
        return self.client.post(
            "/console/login",
            data={
                "email": email,
                "password": password,
                "csrf_token": csrf_token_of(form.text),
            },
            headers={"cookie": login_cookie},
        )

    def post(self, path: str, **fields: str) -> httpx.Response:
        """POST a form with the CSRF token of the queue page."""
        token = csrf_token_of(self.get("/console").text)
        return self.post_with_token(path, token, **fields)

    def post_with_token(
        self, path: str, token: str | None, **fields: str
    ) -> httpx.Response:
        """POST a form with ``token`` as its CSRF token, or none at all."""
        data = {**fields, **({} if token is None else {"csrf_token": token})}
        return self.client.post(path, data=data)


@pytest.fixture
def browser(server: LiveServer) -> Iterator[Browser]:
    opened = Browser(server)
    yield opened
    opened.close()


@pytest.fixture
def signed_in(browser: Browser, ann: Agent) -> Browser:
    assert browser.sign_in().status_code == 303
    return browser


# Reading pages


def csrf_token_of(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


def text_of(fragment: str) -> str:
    """The visible text of an HTML fragment, whitespace folded."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def row_ids(page: str) -> list[int]:
    return [int(found) for found in re.findall(r'<tr data-ticket-id="(\d+)"', page)]


def timeline(page: str) -> list[tuple[str, str]]:
    """The timeline's entries as ``(data-kind, text)``, oldest first."""
    listed = re.search(r'<ol id="timeline".*?>(.*)</ol>', page, re.S)
    assert listed, "the page has no timeline"
    entries = re.findall(
        r'<li data-kind="([a-z_]+)"[^>]*>(.*?)(?=<li data-kind=|$)', listed[1], re.S
    )
    return [(kind, text_of(body)) for kind, body in entries]


def field(page: str, name: str) -> str:
    """The text of the ticket field ``name`` (its ``data-field``)."""
    pattern = rf'<div data-field="{name}">\s*<dt>.*?</dt>\s*<dd>(.*?)</dd>'
    match = re.search(pattern, page, re.S)
    assert match, f"the page shows no field {name}"
    return text_of(match.group(1))


def alert(page: str) -> str:
    match = re.search(r'role="alert"[^>]*>(.*?)</', page, re.S)
    assert match, "the page shows no alert"
    return text_of(match.group(1))


def status_count(page: str, status: str) -> int:
    match = re.search(rf'<li data-status="{status}">(.*?)</li>', page, re.S)
    assert match, f"no count for {status}"
    return int(re.findall(r"\d+", text_of(match.group(1)))[-1])


def session_cookie(response: httpx.Response) -> list[str]:
    """The attributes of the ``helpline_session`` cookie the response sets."""
    for header in response.headers.get_list("set-cookie"):
        if header.startswith("helpline_session="):
            return [part.strip() for part in header.split(";")]
    raise AssertionError("no helpline_session cookie was set")


# Signing in


def test_signed_out_queue_redirects_to_the_sign_in_form(browser: Browser) -> None:
    response = browser.get("/console")

    assert response.status_code == 303
    assert response.headers["location"] == "/console/login"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/console/tickets/1"),
        ("GET", "/console/tickets/1/attachments/1"),
        ("POST", "/console/tickets/1/status"),
        ("POST", "/console/tickets/1/reply"),
        ("POST", "/console/logout"),
    ],
)
def test_pages_that_need_a_session_redirect_without_one(
    browser: Browser, method: str, path: str
) -> None:
    response = browser.client.request(method, path, data={"csrf_token": "x"})

    assert response.status_code == 303
    assert response.headers["location"] == "/console/login"


def test_sign_in_form_has_labelled_fields_and_a_login_csrf_cookie(
    browser: Browser,
) -> None:
    response = browser.get("/console/login")

    page = response.text
    assert response.status_code == 200
    assert '<form id="login-form"' in page
    assert '<label for="email">Email</label>' in page
    assert '<label for="password">Password</label>' in page
    assert ">Sign in</button>" in page
    assert '<meta name="viewport"' in page
    token = response.cookies["helpline_login_csrf"]
    assert csrf_token_of(page) == token


def test_sign_in_sets_a_session_cookie_without_secure_on_plain_http(
    browser: Browser, ann: Agent
) -> None:
    response = browser.sign_in()

    assert response.status_code == 303
    assert response.headers["location"] == "/console"
    cookie = session_cookie(response)
    assert {"HttpOnly", "SameSite=Lax", "Path=/console", "Max-Age=43200"} <= set(cookie)
    assert "Secure" not in cookie
    queue = browser.get("/console")
    assert queue.status_code == 200
    assert "Ann" in queue.text
    assert '<form id="logout-form"' in queue.text


def test_sign_in_page_sends_a_signed_in_agent_to_the_queue(signed_in: Browser) -> None:
    response = signed_in.get("/console/login")

    assert response.status_code == 303
    assert response.headers["location"] == "/console"


@pytest.mark.parametrize(
    ("trusted_proxies", "secure"),
    [(("127.0.0.1/32",), True), ((), False), (("10.0.0.0/8",), False)],
    ids=["trusted-proxy", "no-proxies", "other-proxy"],
)
def test_forwarded_https_makes_the_cookie_secure_only_from_a_trusted_proxy(
    start_server: StartServer,
    ann: Agent,
    trusted_proxies: tuple[str, ...],
    secure: bool,
) -> None:
    server = start_server(trusted_proxies=trusted_proxies)
    browser = Browser(server, **{"x-forwarded-proto": "https"})

    response = browser.sign_in()

    browser.close()
    assert response.status_code == 303
    assert ("Secure" in session_cookie(response)) is secure


@pytest.mark.parametrize(
    ("email", "password"),
    [
        ("ann@example.com", "not the password"),
        ("nobody@example.com", PASSWORD),
        ("bob@example.com", PASSWORD),
    ],
    ids=["wrong-password", "unknown-email", "disabled-agent"],
)
def test_failed_sign_in_says_the_same_for_every_reason(
    browser: Browser, store: ConsoleStore, ann: Agent, email: str, password: str
) -> None:
    create_agent(store, "bob@example.com", "Bob")
    store.disable_agent("bob@example.com", now_ms=now_ms())

    response = browser.sign_in(email, password)

    assert response.status_code == 401
    assert alert(response.text) == WRONG_CREDENTIALS
    assert '<form id="login-form"' in response.text
    assert "helpline_session" not in response.cookies
    assert browser.get("/console").status_code == 303


def test_sign_in_without_the_login_csrf_token_is_refused(
    browser: Browser, ann: Agent
) -> None:
    browser.get("/console/login")

    response = browser.client.post(
        "/console/login", data={"email": "ann@example.com", "password": PASSWORD}
    )

    assert response.status_code == 403
    assert "helpline_session" not in response.cookies
    assert browser.get("/console").status_code == 303


def test_five_failures_refuse_sign_in_even_with_the_right_password(
    browser: Browser, ann: Agent
) -> None:
    for _ in range(5):
        assert browser.sign_in(password="guess again").status_code == 401

    response = browser.sign_in()

    assert response.status_code == 429
    assert alert(response.text) == "Too many failed sign-ins; try again in 15 minutes."
    assert 0 < int(response.headers["retry-after"]) <= 15 * 60
    assert "helpline_session" not in response.cookies


def test_failures_are_counted_per_client_behind_a_trusted_proxy(
    start_server: StartServer, ann: Agent
) -> None:
    server = start_server(trusted_proxies=("127.0.0.1",))
    guesser = Browser(server, **{"x-forwarded-for": "198.51.100.7"})
    colleague = Browser(server, **{"x-forwarded-for": "203.0.113.9, 198.51.100.20"})

    for number in range(5):
        guesser.sign_in(f"guess{number}@example.com", "wrong password")
    refused = guesser.sign_in()
    allowed = colleague.sign_in()

    guesser.close()
    colleague.close()
    assert refused.status_code == 429
    assert allowed.status_code == 303


def test_forwarded_for_from_an_untrusted_peer_does_not_change_the_address(
    server: LiveServer, ann: Agent
) -> None:
    guesser = Browser(server, **{"x-forwarded-for": "198.51.100.7"})
    pretender = Browser(server, **{"x-forwarded-for": "203.0.113.9"})

    for number in range(5):
        guesser.sign_in(f"guess{number}@example.com", "wrong password")
    response = pretender.sign_in()

    guesser.close()
    pretender.close()
    assert response.status_code == 429


def test_sign_out_ends_the_session_for_the_old_cookie_too(
    signed_in: Browser, server: LiveServer
) -> None:
    old_cookie = signed_in.client.cookies["helpline_session"]

    response = signed_in.post("/console/logout")

    assert response.status_code == 303
    assert response.headers["location"] == "/console/login"
    assert "Max-Age=0" in session_cookie(response)
    with httpx.Client(base_url=server.url, follow_redirects=False) as replay:
        replay.cookies.set("helpline_session", old_cookie)
        assert replay.get("/console").status_code == 303


def test_sign_out_without_the_csrf_token_keeps_the_session(
    signed_in: Browser,
) -> None:
    response = signed_in.post_with_token("/console/logout", None)

    assert response.status_code == 403
    assert signed_in.get("/console").status_code == 200


def test_expired_session_redirects_to_sign_in_and_drops_the_cookie(
    signed_in: Browser, store: ConsoleStore
) -> None:
    with store.engine.begin() as connection:
        connection.execute(console_sessions.update().values(expires_at_ms=0))

    response = signed_in.get("/console")

    assert response.status_code == 303
    assert response.headers["location"] == "/console/login"
    assert "Max-Age=0" in session_cookie(response)


# CSRF on the ticket actions

ACTIONS = {
    "status": {"status": "Closed"},
    "assign": {"assignee": "me"},
    "reply": {"body": "We are on it."},
    "note": {"body": "Customer called twice."},
    "revoke-access": {},
}


@pytest.mark.parametrize("action", ACTIONS)
def test_action_without_the_sessions_csrf_token_is_refused_and_changes_nothing(
    signed_in: Browser,
    server: LiveServer,
    credentials: Credentials,
    store: ConsoleStore,
    action: str,
) -> None:
    ticket_id = new_ticket(server, credentials)
    path = f"/console/tickets/{ticket_id}/{action}"

    missing = signed_in.post_with_token(path, None, **ACTIONS[action])
    wrong = signed_in.post_with_token(path, "x" * 32, **ACTIONS[action])

    assert missing.status_code == 403
    assert wrong.status_code == 403
    assert "nothing was changed" in alert(wrong.text)
    ticket = store.console_ticket(ticket_id)
    assert [event.kind for event in ticket.record.events] == ["created"]
    assert ticket.messages == ()
    assert ticket.console_access_active(now_ms())


# The queue


@pytest.fixture
def queue_tickets(
    server: LiveServer,
    make_key: MakeKey,
    store: ConsoleStore,
    ann: Agent,
) -> dict[str, int]:
    """Four tickets in two organizations, each differing in what a filter reads."""
    acme = make_key("acme")
    other = make_key("globex", user_email="ops@globex.example")
    tickets = {
        "camera offline": new_ticket(
            server, acme, subject="Camera offline", productType="Camera"
        ),
        "doorbell": new_ticket(
            server,
            acme,
            subject="Doorbell chimes",
            body="The chime is silent.",
            productType="Doorbell",
            consoleAccessGranted=False,
        ),
        "camera flickers": new_ticket(server, other, subject="Camera flickers"),
    }
    rma = httpx.post(
        server.url + "/api/help/rma",
        json={**VALID_RMA, "deviceName": "Gateway", "problem": "Does not boot"},
        headers=acme.headers(),
    )
    tickets["rma"] = rma.json()["ticketId"]
    store.set_status(
        tickets["doorbell"], TicketStatus.PENDING, actor=ann.email, now_ms=now_ms()
    )
    store.assign(tickets["camera offline"], ann.id, by=ann, now_ms=now_ms())
    return tickets


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, ["rma", "camera flickers", "doorbell", "camera offline"]),
        ({"status": "Pending"}, ["doorbell"]),
        ({"organization": "globex"}, ["camera flickers"]),
        ({"q": "camera"}, ["camera flickers", "camera offline"]),
        ({"q": "camera", "organization": "acme"}, ["camera offline"]),
        ({"kind": "rma"}, ["rma"]),
        ({"product_type": "Doorbell"}, ["doorbell"]),
        ({"assignee": "me"}, ["camera offline"]),
        ({"assignee": "none"}, ["rma", "camera flickers", "doorbell"]),
        ({"console_access": "no"}, ["rma", "doorbell"]),
        (
            {"status": "", "q": ""},
            ["rma", "camera flickers", "doorbell", "camera offline"],
        ),
    ],
    ids=lambda value: json.dumps(value) if isinstance(value, dict) else None,
)
def test_queue_shows_the_tickets_each_filter_selects_newest_first(
    signed_in: Browser,
    queue_tickets: dict[str, int],
    filters: dict[str, str],
    expected: list[str],
) -> None:
    response = signed_in.get("/console", **filters)

    assert response.status_code == 200
    assert row_ids(response.text) == [queue_tickets[name] for name in expected]


def test_queue_rows_link_to_their_ticket_by_subject(
    signed_in: Browser, server: LiveServer, credentials: Credentials
) -> None:
    titled = new_ticket(server, credentials, subject="Lens fogged")
    untitled = new_ticket(server, credentials, subject=None)

    page = signed_in.get("/console").text

    assert f'<a href="/console/tickets/{titled}">Lens fogged</a>' in page
    assert f'<a href="/console/tickets/{untitled}">(no subject)</a>' in page


def test_status_counts_follow_the_organization_filter(
    signed_in: Browser, queue_tickets: dict[str, int]
) -> None:
    everyone = signed_in.get("/console").text
    acme = signed_in.get("/console", organization="acme").text

    assert status_count(everyone, "Open") == 3
    assert status_count(acme, "Open") == 2
    assert status_count(acme, "Pending") == 1
    assert status_count(acme, "Closed") == 0


def test_empty_queue_says_no_tickets_match(signed_in: Browser) -> None:
    page = signed_in.get("/console", q="nothing-like-this").text

    assert "No tickets match." in page
    assert 'rel="next"' not in page


def test_next_page_continues_after_fifty_tickets_keeping_the_filters(
    signed_in: Browser, server: LiveServer, make_key: MakeKey
) -> None:
    acme = make_key("acme")
    other = make_key("globex", user_email="ops@globex.example")
    mine = [new_ticket(server, acme, subject=f"Ticket {n}") for n in range(53)]
    new_ticket(server, other)
    new_ticket(server, other)

    first = signed_in.get("/console", organization="acme").text
    link = re.search(r'<a rel="next" href="([^"]+)"', first)
    assert link, "the first page has no next-page link"
    second = signed_in.client.get(html.unescape(link.group(1))).text

    assert "organization=acme" in link.group(1)
    assert len(row_ids(first)) == 50
    assert row_ids(first) + row_ids(second) == sorted(mine, reverse=True)
    assert 'rel="next"' not in second


@pytest.mark.parametrize(
    "query",
    [
        {"status": "Bogus"},
        {"organization": "nobody-has-this-name"},
        {"kind": "parcel"},
        {"assignee": "9999"},
        {"assignee": "someone"},
        {"assignee": "\u00b2"},
        {"console_access": "maybe"},
        {"after": "not-a-cursor"},
        {"after": "1.99999999999"},
        {"product_type": "x" * 65},
    ],
    ids=lambda query: next(iter(query)),
)
def test_queue_filter_it_cannot_apply_is_a_400_page(
    signed_in: Browser, query: dict[str, str]
) -> None:
    response = signed_in.get("/console", **query)

    assert response.status_code == 400
    assert alert(response.text)
    assert '<form id="logout-form"' in response.text


def test_queue_parameter_given_twice_is_a_400_page(signed_in: Browser) -> None:
    response = signed_in.client.get("/console?status=Open&status=Closed")

    assert response.status_code == 400
    assert "once" in alert(response.text)


# A ticket's page


def test_ticket_page_shows_every_field_and_the_creation_event(
    signed_in: Browser, server: LiveServer, credentials: Credentials
) -> None:
    ticket_id = new_ticket(server, credentials)

    response = signed_in.get(f"/console/tickets/{ticket_id}")

    page = response.text
    assert response.status_code == 200
    assert re.search(r"<h1>.*Camera connectivity issue</h1>", page)
    assert '<dl id="ticket-fields"' in page
    assert field(page, "submitter") == "ops@acme.example"
    assert field(page, "organization") == "acme"
    assert field(page, "collaborators") == "it@acme.example"
    assert field(page, "serial_numbers") == "RCAM-1234-ABCD"
    assert field(page, "product_type") == "Camera"
    assert field(page, "service_type") == "Support"
    assert field(page, "kind") == "Ticket"
    assert field(page, "status") == "Open"
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", field(page, "created")
    )
    assert field(page, "console_access").startswith("In force until ")
    assert VALID_REQUEST["body"] in page
    [(kind, text)] = timeline(page)
    assert kind == "created"
    assert "by ops@acme.example" in text
    assert "Status: — → Open" in text
    assert '<form id="revoke-form"' in page


def test_rma_ticket_page_shows_the_return_details(
    signed_in: Browser, server: LiveServer, credentials: Credentials
) -> None:
    response = httpx.post(
        server.url + "/api/help/rma", json=VALID_RMA, headers=credentials.headers()
    )
    ticket_id = response.json()["ticketId"]

    page = signed_in.get(f"/console/tickets/{ticket_id}").text

    assert field(page, "kind") == "RMA"
    assert field(page, "contact_name") == "John Doe"
    assert field(page, "contact_phone_number") == "+15551234567"
    assert field(page, "return_address") == (
        "123 Main Street 94105 San Francisco, CA United States"
    )


def test_unknown_ticket_is_a_404_page(signed_in: Browser) -> None:
    response = signed_in.get("/console/tickets/424242")

    assert response.status_code == 404
    assert "424242" in alert(response.text)


def test_changing_the_status_is_recorded_with_who_and_before_and_after(
    signed_in: Browser,
    server: LiveServer,
    credentials: Credentials,
    store: ConsoleStore,
) -> None:
    ticket_id = new_ticket(server, credentials)

    response = signed_in.post(f"/console/tickets/{ticket_id}/status", status="Pending")

    assert response.status_code == 303
    assert response.headers["location"] == f"/console/tickets/{ticket_id}"
    assert store.get_ticket(ticket_id).status == "Pending"
    page = signed_in.get(f"/console/tickets/{ticket_id}").text
    kind, text = timeline(page)[-1]
    assert kind == "status_changed"
    assert "by ann@example.com" in text
    assert "Status: Open → Pending" in text


def test_assigning_to_me_then_to_a_colleague_then_to_nobody_is_recorded(
    signed_in: Browser,
    server: LiveServer,
    credentials: Credentials,
    store: ConsoleStore,
) -> None:
    ticket_id = new_ticket(server, credentials)
    bob = create_agent(store, "bob@example.com", "Bob")
    path = f"/console/tickets/{ticket_id}/assign"

    assert signed_in.post(path, assignee="me").status_code == 303
    assert signed_in.post(path, assignee=str(bob.id)).status_code == 303
    assert signed_in.post(path, assignee="none").status_code == 303

    page = signed_in.get(f"/console/tickets/{ticket_id}").text
    changes = [text for kind, text in timeline(page) if kind == "assigned"]
    assert [change.split(" Assignee: ")[1] for change in changes] == [
        "nobody → ann@example.com",
        "ann@example.com → bob@example.com",
        "bob@example.com → nobody",
    ]
    assert all("by ann@example.com" in change for change in changes)
    assert field(page, "assignee") == "Nobody"


def test_assigning_to_a_disabled_agent_is_refused_on_the_page(
    signed_in: Browser,
    server: LiveServer,
    credentials: Credentials,
    store: ConsoleStore,
) -> None:
    ticket_id = new_ticket(server, credentials)
    bob = create_agent(store, "bob@example.com", "Bob")
    store.disable_agent(bob.email, now_ms=now_ms())

    response = signed_in.post(
        f"/console/tickets/{ticket_id}/assign", assignee=str(bob.id)
    )

    assert response.status_code == 400
    assert "disabled" in alert(response.text)
    assert store.get_ticket(ticket_id).assignee_agent_id is None


def test_a_ticket_of_a_disabled_agent_shows_them_as_its_assignee(
    signed_in: Browser,
    server: LiveServer,
    credentials: Credentials,
    store: ConsoleStore,
) -> None:
    ticket_id = new_ticket(server, credentials)
    bob = create_agent(store, "bob@example.com", "Bob")
    cy = create_agent(store, "cy@example.com", "Cy")
    path = f"/console/tickets/{ticket_id}/assign"
    assert signed_in.post(path, assignee=str(bob.id)).status_code == 303
    store.disable_agent(bob.email, now_ms=now_ms())
    store.disable_agent(cy.email, now_ms=now_ms())

    page = signed_in.get(f"/console/tickets/{ticket_id}").text
    options = assignee_options(page)

    assert options[str(bob.id)] == ("Bob (disabled)", True)
    assert str(cy.id) not in options  # disabled, and not this ticket's
    assert options["none"] == ("Nobody", False)
    # Sent back unchanged, the form is refused, not read as "nobody".
    response = signed_in.post(path, assignee=str(bob.id))
    assert response.status_code == 400
    assert "disabled" in alert(response.text)
    assert store.get_ticket(ticket_id).assignee_agent_id == bob.id


def assignee_options(page: str) -> dict[str, tuple[str, bool]]:
    """The assignee select's options: value → (label, selected)."""
    select = re.search(r'<select id="assignee"[^>]*>(.*?)</select>', page, re.S)
    assert select, "the page has no assignee select"
    options = re.findall(
        r'<option value="([^"]*)"( selected)?>(.*?)</option>', select.group(1), re.S
    )
    return {value: (text_of(label), bool(chosen)) for value, chosen, label in options}


def test_reply_and_note_appear_in_the_timeline_the_note_marked_internal(
    signed_in: Browser, server: LiveServer, credentials: Credentials
) -> None:
    ticket_id = new_ticket(server, credentials)

    replied = signed_in.post(
        f"/console/tickets/{ticket_id}/reply", body="  Please restart it.\r\nThen?  "
    )
    noted = signed_in.post(
        f"/console/tickets/{ticket_id}/note", body="Firmware 2.1 is known bad."
    )

    assert replied.status_code == noted.status_code == 303
    page = signed_in.get(f"/console/tickets/{ticket_id}").text
    [_, reply, note] = timeline(page)
    assert reply[0] == "replied"
    assert "by ann@example.com" in reply[1]
    assert "Please restart it. Then?" in reply[1]
    assert note[0] == "note_added"
    assert note[1].startswith("Internal note by ann@example.com")
    assert "Firmware 2.1 is known bad." in note[1]
    assert "Please restart it.\nThen?</div>" in page


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("", "empty"),
        ("   \n ", "empty"),
        ("x" * 10_001, "10,000"),
        ("a\x00b", "U+0000"),
    ],
    ids=["empty", "blank", "too-long", "control-character"],
)
@pytest.mark.parametrize("kind", ["reply", "note"])
def test_reply_or_note_it_cannot_take_shows_the_page_again_with_the_reason(
    signed_in: Browser,
    server: LiveServer,
    credentials: Credentials,
    store: ConsoleStore,
    kind: str,
    body: str,
    message: str,
) -> None:
    ticket_id = new_ticket(server, credentials)

    response = signed_in.post(f"/console/tickets/{ticket_id}/{kind}", body=body)

    assert response.status_code == 400
    assert message in alert(response.text)
    assert f'<form id="{kind}-form"' in response.text
    assert store.console_ticket(ticket_id).messages == ()


def test_reply_of_ten_thousand_characters_is_taken(
    signed_in: Browser, server: LiveServer, credentials: Credentials
) -> None:
    ticket_id = new_ticket(server, credentials)

    response = signed_in.post(f"/console/tickets/{ticket_id}/reply", body="é" * 10_000)

    assert response.status_code == 303


def test_revoking_console_access_ends_the_grant_and_records_it(
    signed_in: Browser,
    server: LiveServer,
    credentials: Credentials,
    store: ConsoleStore,
) -> None:
    ticket_id = new_ticket(server, credentials)

    response = signed_in.post(f"/console/tickets/{ticket_id}/revoke-access")

    assert response.status_code == 303
    assert not store.console_ticket(ticket_id).console_access_active(now_ms())
    page = signed_in.get(f"/console/tickets/{ticket_id}").text
    kind, text = timeline(page)[-1]
    assert kind == "console_access_revoked"
    assert "by ann@example.com" in text
    assert "Console access: granted → revoked" in text
    assert field(page, "console_access").startswith("Revoked at ")
    assert '<form id="revoke-form"' not in page


def test_ticket_without_a_grant_offers_no_revoke(
    signed_in: Browser, server: LiveServer, credentials: Credentials
) -> None:
    ticket_id = new_ticket(server, credentials, consoleAccessGranted=False)

    page = signed_in.get(f"/console/tickets/{ticket_id}").text

    assert field(page, "console_access") == "Not granted"
    assert '<form id="revoke-form"' not in page


@pytest.mark.parametrize(
    "form",
    ["status-form", "assign-form", "assign-me-form", "reply-form", "note-form"],
)
def test_ticket_page_has_each_action_form(
    signed_in: Browser, server: LiveServer, credentials: Credentials, form: str
) -> None:
    ticket_id = new_ticket(server, credentials)

    page = signed_in.get(f"/console/tickets/{ticket_id}").text

    match = re.search(rf'<form id="{form}" method="post"(.*?)</form>', page, re.S)
    assert match, f"no {form}"
    assert f'name="csrf_token" value="{csrf_token_of(page)}"' in match.group(1)


def test_action_on_an_unknown_ticket_is_a_404_page(signed_in: Browser) -> None:
    response = signed_in.post("/console/tickets/424242/status", status="Closed")

    assert response.status_code == 404


# Attachments


def post_ticket_with_file(
    server: LiveServer, credentials: Credentials, name: str, content: bytes
) -> int:
    response = httpx.post(
        server.url + "/api/help/ticketWithFile",
        files={
            "request": (None, json.dumps(VALID_REQUEST), "application/json"),
            "file": (name, content, "text/html"),
        },
        headers=credentials.headers(),
        timeout=30,
    )
    ticket_id: int = response.json()["ticketId"]
    return ticket_id


def test_attachment_downloads_as_bytes_never_inline(
    signed_in: Browser, server: LiveServer, credentials: Credentials
) -> None:
    content = b"<html><script>alert(1)</script></html>"
    ticket_id = post_ticket_with_file(
        server, credentials, "Grüße aus Köln.html", content
    )
    page = signed_in.get(f"/console/tickets/{ticket_id}").text
    [link] = re.findall(r'<ul id="attachments".*?<a href="([^"]+)"', page, re.S)

    response = signed_in.get(link)

    assert response.status_code == 200
    assert response.content == content
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"] == (
        "attachment; filename*=UTF-8''Gr%C3%BC%C3%9Fe%20aus%20K%C3%B6ln.html"
    )
    assert response.headers["x-content-type-options"] == "nosniff"


def test_large_attachment_arrives_whole(
    signed_in: Browser, server: LiveServer, credentials: Credentials
) -> None:
    content = os.urandom(3 * MIB + 17)
    ticket_id = post_ticket_with_file(server, credentials, "dump.bin", content)
    attachment_id = re.findall(
        r"/attachments/(\d+)", signed_in.get(f"/console/tickets/{ticket_id}").text
    )[0]

    response = signed_in.get(
        f"/console/tickets/{ticket_id}/attachments/{attachment_id}"
    )

    assert response.headers["content-length"] == str(len(content))
    assert response.content == content


def test_attachment_of_another_ticket_is_a_404(
    signed_in: Browser, server: LiveServer, credentials: Credentials
) -> None:
    with_file = post_ticket_with_file(server, credentials, "a.txt", b"hello")
    other = new_ticket(server, credentials)
    attachment_id = re.findall(
        r"/attachments/(\d+)", signed_in.get(f"/console/tickets/{with_file}").text
    )[0]

    response = signed_in.get(f"/console/tickets/{other}/attachments/{attachment_id}")

    assert response.status_code == 404


# What every page carries


def test_user_text_is_shown_as_text_never_as_markup(
    signed_in: Browser, server: LiveServer, credentials: Credentials
) -> None:
    ticket_id = new_ticket(server, credentials, subject=SCRIPT, body=SCRIPT)
    signed_in.post(f"/console/tickets/{ticket_id}/reply", body=SCRIPT)
    signed_in.post(f"/console/tickets/{ticket_id}/note", body=SCRIPT)

    queue = signed_in.get("/console").text
    page = signed_in.get(f"/console/tickets/{ticket_id}").text

    assert SCRIPT not in queue
    assert SCRIPT not in page
    assert ESCAPED_SCRIPT in queue
    assert page.count(ESCAPED_SCRIPT) >= 5  # title, heading, body, reply, note


def test_every_page_carries_the_security_headers(
    signed_in: Browser, server: LiveServer, credentials: Credentials
) -> None:
    ticket_id = new_ticket(server, credentials)
    pages = {
        "sign-in": httpx.get(server.url + "/console/login"),
        "queue": signed_in.get("/console"),
        "ticket": signed_in.get(f"/console/tickets/{ticket_id}"),
        "refused filter": signed_in.get("/console", status="Bogus"),
        "unknown ticket": signed_in.get("/console/tickets/99999"),
        "unknown page": signed_in.get("/console/nothing-here"),
        "refused form": signed_in.post(f"/console/tickets/{ticket_id}/reply", body=""),
    }

    for name, response in pages.items():
        headers = response.headers
        assert headers["content-type"] == "text/html; charset=utf-8", name
        assert headers["content-security-policy"] == PAGE_POLICY, name
        assert headers["x-frame-options"] == "DENY", name
        assert headers["x-content-type-options"] == "nosniff", name
        assert headers["referrer-policy"] == "same-origin", name
        assert headers["cache-control"] == "no-store", name


@pytest.mark.parametrize("path", ["/console/nothing-here", "/console/tickets/99999"])
def test_error_pages_of_a_signed_in_agent_keep_the_header(
    signed_in: Browser, path: str
) -> None:
    page = signed_in.get(path).text

    assert '<span class="agent-name">Ann</span>' in page
    assert '<form id="logout-form"' in page


def test_stylesheet_is_served_as_css(browser: Browser) -> None:
    response = browser.get("/console/static/console.css")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/css; charset=utf-8"
    assert ":focus-visible" in response.text


def test_wrong_method_is_a_405_page_naming_the_allowed_one(browser: Browser) -> None:
    response = browser.client.delete("/console/login")

    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"


def test_form_that_is_not_url_encoded_is_refused(signed_in: Browser) -> None:
    response = signed_in.client.post("/console/logout", json={"csrf_token": "x"})

    assert response.status_code == 415


# The database going away


@pytest.mark.backends("sqlite")
def test_locked_database_is_a_503_page_not_an_error(
    signed_in: Browser, database_url: str
) -> None:
    path = sqlite_file(database_url)
    assert path is not None
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        response = signed_in.get("/console")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()

    assert response.status_code == 503
    assert "not available" in alert(response.text)
    assert "Traceback" not in response.text


@pytest.mark.backends("postgresql")
def test_unreachable_database_is_a_503_page_not_an_error(
    signed_in: Browser, database_url: str
) -> None:
    url = sa.make_url(database_url)
    server = sa.create_engine(
        url.set(drivername="postgresql+psycopg", database="postgres"),
        isolation_level="AUTOCOMMIT",
        poolclass=sa.pool.NullPool,
    )
    with server.connect() as connection:
        connection.execute(
            sa.text(f"ALTER DATABASE {url.database} WITH ALLOW_CONNECTIONS false")
        )
        connection.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :name"
            ),
            {"name": url.database},
        )
    server.dispose()

    response = signed_in.get("/console")

    assert response.status_code == 503
    assert "not available" in alert(response.text)
