"""The console's storage on each backend: agents, sessions, sign-in throttling, the
queue and the actions that write a ticket's timeline; and ``helpline agents``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from helpline.cli import cli
from helpline.domain.agents import (
    LOGIN_FAILURES_ALLOWED,
    SESSION_IDLE_MS,
    SESSION_LIFETIME_MS,
    Agent,
    hash_password,
    password_matches,
)
from helpline.domain.tickets import TicketStatus
from helpline.storage.console import ConsoleStore, QueueFilter
from helpline.storage.errors import AlreadyExists, NotFound

from .conftest import VALID_REQUEST, Credentials, MakeKey

PASSWORD = "correct horse battery"


@pytest.fixture
def console(database_url: str) -> Iterator[ConsoleStore]:
    store = ConsoleStore(database_url)
    yield store
    store.close()


def now() -> int:
    return int(time.time() * 1000)


def add_agent(console: ConsoleStore, email: str = "ana@support.example") -> Agent:
    return console.create_agent(
        email=email,
        name=email.split("@", 1)[0].title(),
        password_hash="x",
        now_ms=now(),
    )


def open_ticket(api: httpx.Client, credentials: Credentials, **fields: Any) -> int:
    response = api.post(
        "/api/help/ticket",
        json={**VALID_REQUEST, **fields},
        headers=credentials.headers(),
    )
    assert response.json()["success"], response.text
    return int(response.json()["ticketId"])


def run(database_url: str, *arguments: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(
        cli, [*arguments, "--database", database_url], input=stdin
    )


# Agents


def test_agent_emails_are_unique(console: ConsoleStore) -> None:
    add_agent(console)

    with pytest.raises(AlreadyExists, match=r"ana@support\.example"):
        add_agent(console)


def test_disabling_an_agent_ends_their_sessions(console: ConsoleStore) -> None:
    agent = add_agent(console)
    console.create_session(agent_id=agent.id, digest="d", csrf_token="c", now_ms=now())

    disabled = console.disable_agent(agent.email, now_ms=now())

    assert disabled.disabled
    assert console.session("d", now_ms=now()) is None
    with pytest.raises(NotFound):
        console.disable_agent("nobody@support.example", now_ms=now())


def test_agents_commands_create_list_and_disable(database_url: str) -> None:
    created = run(
        database_url,
        "agents",
        "create",
        "Ana@Support.example",
        "--name",
        "Ana Agent",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    short = run(
        database_url,
        "agents",
        "create",
        "bo@support.example",
        "--password-stdin",
        stdin="short\n",
    )
    disabled = run(database_url, "agents", "disable", "ana@support.example")
    listed = json.loads(run(database_url, "agents", "list", "--json").stdout)

    assert created.exit_code == 0, created.output
    assert short.exit_code == 2
    assert "at least 10 characters" in short.stderr
    assert disabled.exit_code == 0
    assert [(a["email"], a["name"], a["disabled"]) for a in listed] == [
        ("ana@support.example", "Ana Agent", True)
    ]


def test_agents_create_stores_an_argon2id_hash_of_the_password(
    database_url: str, console: ConsoleStore
) -> None:
    run(
        database_url,
        "agents",
        "create",
        "ana@support.example",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )

    found = console.agent_credentials("ana@support.example")

    assert found is not None
    _, stored = found
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored
    assert password_matches(stored, PASSWORD)
    assert not password_matches(stored, PASSWORD + "!")
    assert not password_matches(None, PASSWORD)


# Sessions and throttling


def test_a_session_lives_until_its_lifetime_or_idle_time_runs_out(
    console: ConsoleStore,
) -> None:
    agent = add_agent(console)
    start = now()
    console.create_session(agent_id=agent.id, digest="a", csrf_token="c", now_ms=start)
    console.create_session(agent_id=agent.id, digest="b", csrf_token="c", now_ms=start)

    live = console.session("a", now_ms=start + 1000)
    idle = console.session("b", now_ms=start + SESSION_IDLE_MS + 1)
    expired = console.session("a", now_ms=start + SESSION_LIFETIME_MS)

    assert live is not None
    assert live.agent.email == agent.email
    assert live.csrf_token == "c"
    assert idle is None
    assert expired is None


def test_sign_in_is_refused_after_repeated_failures_until_the_window_passes(
    console: ConsoleStore,
) -> None:
    subjects = ["email:ana@support.example", "address:203.0.113.9"]
    start = now()
    for _ in range(LOGIN_FAILURES_ALLOWED - 1):
        console.note_login_failure(subjects, now_ms=start)
    before_the_limit = console.login_wait_ms(subjects, now_ms=start)
    console.note_login_failure(subjects, now_ms=start)

    at_the_limit = console.login_wait_ms(subjects, now_ms=start + 1000)
    other_address = console.login_wait_ms(["address:198.51.100.1"], now_ms=start)
    console.clear_login_failures(subjects)

    assert before_the_limit == 0
    assert 0 < at_the_limit <= 15 * 60 * 1000
    assert other_address == 0
    assert console.login_wait_ms(subjects, now_ms=start) == 0


# The queue


def test_queue_filters_search_and_counts(
    api: httpx.Client, make_key: MakeKey, console: ConsoleStore
) -> None:
    acme, globex = make_key("acme"), make_key("globex", user_email="it@globex.example")
    camera = open_ticket(api, acme, subject="Camera offline", body="Lens fogged up")
    door = open_ticket(
        api, globex, subject="Door sensor", body="Battery drains", productType="Sensor"
    )
    console.set_status(door, TicketStatus.SOLVED, actor="ana", now_ms=now())

    everything = console.queue(QueueFilter(), now_ms=now()).items
    solved = console.queue(QueueFilter(status="Solved"), now_ms=now()).items
    of_acme = console.queue(QueueFilter(organization="acme"), now_ms=now()).items
    sensors = console.queue(QueueFilter(product_type="Sensor"), now_ms=now()).items
    searched = console.queue(QueueFilter(search="fog"), now_ms=now()).items
    no_match = console.queue(QueueFilter(search="printer"), now_ms=now()).items
    granted = console.queue(QueueFilter(console_access=True), now_ms=now()).items

    assert [item.id for item in everything] == [door, camera]
    assert [item.id for item in solved] == [door]
    assert [item.id for item in of_acme] == [camera]
    assert [item.id for item in sensors] == [door]
    assert [item.id for item in searched] == [camera]
    assert no_match == []
    assert {item.id for item in granted} == {camera, door}
    assert console.status_counts() == {
        "Open": 1,
        "Pending": 0,
        "Solved": 1,
        "Closed": 0,
    }
    assert console.status_counts(organization="globex")["Solved"] == 1


def test_queue_pages_continue_from_a_cursor_without_repeats(
    api: httpx.Client, credentials: Credentials, console: ConsoleStore
) -> None:
    made = [open_ticket(api, credentials, subject=f"Ticket {n}") for n in range(7)]

    seen, cursor, pages = [], None, 0
    while True:
        page = console.queue(QueueFilter(), now_ms=now(), after=cursor, limit=3)
        seen += [item.id for item in page.items]
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break

    assert seen == sorted(made, reverse=True)
    assert pages == 3
    with pytest.raises(ValueError, match="cursor"):
        console.queue(QueueFilter(), now_ms=now(), after="nonsense")


# Actions and the timeline


def test_assigning_records_who_and_the_before_and_after(
    api: httpx.Client, credentials: Credentials, console: ConsoleStore
) -> None:
    ticket_id = open_ticket(api, credentials)
    ana, bo = add_agent(console), add_agent(console, "bo@support.example")

    first = console.assign(ticket_id, bo.id, by=ana, now_ms=now())
    again = console.assign(ticket_id, bo.id, by=ana, now_ms=now())
    console.assign(ticket_id, None, by=ana, now_ms=now())

    events = [e for e in console.get_ticket(ticket_id).events if e.kind == "assigned"]
    assert (first, again) == (True, False)
    assert [(e.actor, e.before, e.after) for e in events] == [
        ("ana@support.example", {"assignee": None}, {"assignee": "bo@support.example"}),
        ("ana@support.example", {"assignee": "bo@support.example"}, {"assignee": None}),
    ]
    assigned = console.queue(QueueFilter(unassigned=True), now_ms=now()).items
    assert [item.id for item in assigned] == [ticket_id]


def test_replies_and_notes_are_kept_apart_and_in_the_timeline(
    api: httpx.Client, credentials: Credentials, console: ConsoleStore
) -> None:
    ticket_id = open_ticket(api, credentials)
    ana = add_agent(console)

    reply = console.add_message(
        ticket_id, kind="reply", body="Please power-cycle it.", by=ana, now_ms=now()
    )
    note = console.add_message(
        ticket_id, kind="note", body="Known firmware bug.", by=ana, now_ms=now()
    )

    page = console.console_ticket(ticket_id)
    assert [(m.id, m.kind, m.author) for m in page.messages] == [
        (reply, "reply", ana.email),
        (note, "note", ana.email),
    ]
    kinds = [(e.kind, e.after) for e in page.record.events]
    assert ("replied", {"message_id": reply}) in kinds
    assert ("note_added", {"message_id": note}) in kinds


def test_revoking_console_access_ends_the_grant_once(
    api: httpx.Client, credentials: Credentials, console: ConsoleStore
) -> None:
    ticket_id = open_ticket(api, credentials, consoleAccessGranted=True)
    ana = add_agent(console)

    revoked = console.revoke_console_access(ticket_id, by=ana, now_ms=now())
    again = console.revoke_console_access(ticket_id, by=ana, now_ms=now())

    page = console.console_ticket(ticket_id)
    assert (revoked, again) == (True, False)
    assert not page.console_access_active(now())
    [event] = [e for e in page.record.events if e.kind == "console_access_revoked"]
    assert event.actor == ana.email
    assert event.after == {"console_access": "revoked"}


def test_actions_on_an_unknown_ticket_raise_not_found(console: ConsoleStore) -> None:
    ana = add_agent(console)

    with pytest.raises(NotFound):
        console.assign(999, ana.id, by=ana, now_ms=now())
    with pytest.raises(NotFound):
        console.add_message(999, kind="note", body="x", by=ana, now_ms=now())
    with pytest.raises(NotFound):
        console.console_ticket(999)


def test_hash_password_refuses_short_passwords() -> None:
    with pytest.raises(ValueError, match="at least 10"):
        hash_password("short")
