"""The agent console in a real headless Chromium, against a real server on SQLite.

Chromium is Debian's package, installed on first use when it is missing; without
it the tests fail where PostgreSQL is required (CI) and are skipped elsewhere.
The run also writes the README's screenshots to ``docs/screenshots/``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Dialog,
    Locator,
    Page,
    Playwright,
    expect,
    sync_playwright,
)

from helpline.domain.agents import Agent, hash_password
from helpline.domain.tickets import TicketStatus
from helpline.storage.console import ConsoleStore
from helpline.storage.engine import make_engine
from helpline.storage.schema import ticket_events, tickets

from .conftest import Credentials, LiveServer, MakeKey, StartServer
from .packages import debian_program

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_PACKAGE = "chromium"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 10_000
PASSWORD = "correct horse battery"
SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
SCRIPT_IN_TICKET = (
    '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned=2">'
)
MINUTE_MS = 60_000
DOORBELL = "Doorbell camera offline since firmware update"

# Installing Chromium on a fresh machine can take minutes on its own.
pytestmark = [pytest.mark.backends("sqlite"), pytest.mark.timeout(600)]


# Chromium itself: found, or installed from Debian's packages


def find_chromium() -> str | None:
    return CHROMIUM if Path(CHROMIUM).exists() else None


@pytest.fixture(scope="module")
def chromium_binary() -> str:
    """Debian's Chromium, installed first if missing."""
    return debian_program(find_chromium, CHROMIUM_PACKAGE)


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright, chromium_binary: str) -> Iterator[Browser]:
    """One headless Chromium for the module; each test opens its own contexts."""
    launched = playwright.chromium.launch(
        executable_path=chromium_binary, headless=True, args=LAUNCH_ARGS
    )
    yield launched
    launched.close()


OpenContext = Callable[..., BrowserContext]


@pytest.fixture
def open_context(browser: Browser) -> Iterator[OpenContext]:
    """Open a fresh browser context (options as for ``Browser.new_context``)."""
    opened: list[BrowserContext] = []

    def open_one(**options: Any) -> BrowserContext:
        context = browser.new_context(**options)
        context.set_default_timeout(TIMEOUT_MS)
        opened.append(context)
        return context

    yield open_one
    for context in opened:
        context.close()


@pytest.fixture
def page(open_context: OpenContext) -> Page:
    return open_context().new_page()


# The console's server, its agents and tickets


class Console:
    """A running server with the console, and ways to put agents and tickets in it
    through the same doors an operator and an API client use."""

    def __init__(self, server: LiveServer, database_url: str) -> None:
        self.url = server.url
        self.database_url = database_url

    def add_agent(self, *, email: str, name: str) -> Agent:
        store = ConsoleStore(self.database_url)
        try:
            return store.create_agent(
                email=email,
                name=name,
                password_hash=hash_password(PASSWORD),
                now_ms=now_ms(),
            )
        finally:
            store.close()

    def open_ticket(self, credentials: Credentials, **fields: Any) -> int:
        """Open a ticket through the API, console access granted unless the
        fields say otherwise; its id."""
        request = {"consoleAccessGranted": True, **fields}
        return self.post(credentials, "/api/help/ticket", request)

    def post(self, credentials: Credentials, path: str, request: Any) -> int:
        """POST a request to the API; the id of the ticket it opened."""
        response = httpx.post(
            f"{self.url}{path}", json=request, headers=credentials.headers(), timeout=10
        )
        assert response.status_code == 200, response.text
        return int(response.json()["ticketId"])

    def open_ticket_with_file(
        self, credentials: Credentials, *, file_name: str, content: bytes, **fields: Any
    ) -> int:
        form = {
            "request": (None, json.dumps(fields), "application/json"),
            "file": (file_name, content, "text/plain"),
        }
        response = httpx.post(
            f"{self.url}/api/help/ticketWithFile",
            files=form,
            headers=credentials.headers(),
            timeout=10,
        )
        assert response.status_code == 200, response.text
        return int(response.json()["ticketId"])

    def store(self) -> ConsoleStore:
        """A store on the console's database; the caller closes it."""
        return ConsoleStore(self.database_url)

    def backdate(self, ticket_id: int, *, minutes: int) -> None:
        """Move a ticket's creation, and what happened to it so far, into the past,
        so that a screenshot shows a queue of different ages."""
        shift = minutes * MINUTE_MS
        engine = make_engine(self.database_url)
        with engine.begin() as connection:
            connection.execute(
                tickets.update()
                .where(tickets.c.id == ticket_id)
                .values(
                    created_at_ms=tickets.c.created_at_ms - shift,
                    updated_at_ms=tickets.c.updated_at_ms - shift,
                )
            )
            connection.execute(
                ticket_events.update()
                .where(ticket_events.c.ticket_id == ticket_id)
                .values(created_at_ms=ticket_events.c.created_at_ms - shift)
            )
        engine.dispose()


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.fixture
def console(start_server: StartServer, database_url: str) -> Console:
    return Console(start_server(), database_url)


@pytest.fixture
def ana(console: Console) -> Agent:
    return console.add_agent(email="ana@support.example", name="Ana Agent")


@pytest.fixture
def bruno(console: Console) -> Agent:
    return console.add_agent(email="bruno@support.example", name="Bruno Agent")


@pytest.fixture
def globex(make_key: MakeKey) -> Credentials:
    return make_key("globex", user_email="it@globex.example")


# What an agent does in the browser


def submit(page: Page, control: Locator) -> None:
    """Click a control that submits a form (or follows a link), and wait until
    the page it leads to has loaded."""
    with page.expect_navigation():
        control.click()


def sign_in(page: Page, console: Console, email: str, password: str = PASSWORD) -> None:
    page.goto(f"{console.url}/console/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    submit(page, page.get_by_role("button", name="Sign in"))


def signed_in(page: Page, console: Console, agent: Agent) -> Page:
    sign_in(page, console, agent.email)
    expect(page.locator("form#filters")).to_be_visible()
    return page


def choose(select: Locator, wanted: str) -> None:
    """Select the option whose value or text is ``wanted``, or else the one option
    whose text contains it (the text may add a count or an email)."""
    options = select.locator("option")
    texts = [text.strip() for text in options.all_inner_texts()]
    values = [options.nth(i).get_attribute("value") or "" for i in range(len(texts))]
    exact = [v for v, t in zip(values, texts, strict=True) if wanted in (v, t)]
    partial = [v for v, t in zip(values, texts, strict=True) if wanted in t]
    found = exact or partial
    assert len(found) == 1, f"no single option {wanted!r} among {texts}"
    select.select_option(value=found[0])


def filter_queue(page: Page, **choices: str) -> None:
    """Set the queue's filters, by label (``Status="Open"``), then apply them."""
    filters = page.locator("form#filters")
    for label, wanted in choices.items():
        choose(filters.get_by_label(label.replace("_", " "), exact=True), wanted)
    submit(page, filters.get_by_role("button", name="Apply"))


def search_queue(page: Page, words: str) -> None:
    filters = page.locator("form#filters")
    filters.get_by_label("Search").fill(words)
    submit(page, filters.get_by_role("button", name="Apply"))


def queue_ids(page: Page) -> list[int]:
    rows = page.locator("table#queue tr[data-ticket-id]")
    return [
        int(rows.nth(i).get_attribute("data-ticket-id") or 0)
        for i in range(rows.count())
    ]


def status_count(page: Page, status: str) -> int:
    text = page.locator(f'ul#status-counts li[data-status="{status}"]').inner_text()
    [count] = re.findall(r"\d+", text)
    return int(count)


def named(*agents: Agent) -> re.Pattern[str]:
    """The agents, in this order, each by their name or their email."""
    each = [f"(?:{re.escape(a.name)}|{re.escape(a.email)})" for a in agents]
    return re.compile(".*".join(each), re.DOTALL)


def timeline(page: Page, kind: str) -> Locator:
    return page.locator(f'ol#timeline li[data-kind="{kind}"]')


def sideways_overflow(page: Page) -> int:
    """How many pixels the page is wider than the window; 1 is rounding."""
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    return max(0, int(overflow))


# Tests: the journey of an agent


@pytest.fixture
def three_tickets(
    console: Console, credentials: Credentials, globex: Credentials
) -> list[int]:
    """Two tickets of acme and then one of globex, oldest first."""
    return [
        console.open_ticket(
            credentials,
            subject=DOORBELL,
            body="The front door camera dropped off after last night's update.",
            collaborators=["it@acme.example"],
            serialNumbers=["RCAM-1234-ABCD"],
            productType="Camera",
            serviceType="Support",
        ),
        console.open_ticket(
            credentials,
            subject="Badge reader rejects new cards",
            body="Cards printed this week are refused at the loading dock.",
            productType="Access control",
            serviceType="Support",
        ),
        console.open_ticket(
            globex,
            subject="Sensor battery drains in two days",
            body="The warehouse humidity sensor needs a new battery every other day.",
            productType="Sensor",
            serviceType="Warranty",
        ),
    ]


def test_wrong_password_shows_an_alert_and_the_right_one_opens_the_queue(
    page: Page, console: Console, ana: Agent, three_tickets: list[int]
) -> None:
    sign_in(page, console, ana.email, "not the password")

    expect(page.get_by_role("alert")).to_contain_text("Wrong email or password.")
    sign_in(page, console, ana.email)
    expect(page.locator("header")).to_contain_text("Ana Agent")
    assert queue_ids(page) == three_tickets[::-1]
    assert status_count(page, "Open") == 3
    assert status_count(page, "Solved") == 0


def test_signed_out_visitor_is_sent_to_the_sign_in_page(
    page: Page, console: Console
) -> None:
    page.goto(f"{console.url}/console")

    assert page.url == f"{console.url}/console/login"
    expect(page.locator("form#login-form")).to_be_visible()


FILTER_LABELS = (
    "Status",
    "Organization",
    "Kind",
    "Product type",
    "Service type",
    "Assignee",
    "Console access",
    "Search",
)


def test_every_filter_of_the_queue_is_a_labelled_control(
    page: Page, console: Console, ana: Agent
) -> None:
    signed_in(page, console, ana)

    filters = page.locator("form#filters")
    unlabelled = [
        label
        for label in FILTER_LABELS
        if filters.get_by_label(label, exact=True).count() != 1
    ]
    assert unlabelled == []


def test_queue_narrows_by_status_by_organization_and_by_a_word_of_the_body(
    page: Page, console: Console, ana: Agent, three_tickets: list[int]
) -> None:
    doorbell, badge, sensor = three_tickets
    signed_in(page, console, ana)

    filter_queue(page, Organization="globex")
    assert queue_ids(page) == [sensor]
    filter_queue(page, Organization="acme", Status="Open")
    assert queue_ids(page) == [badge, doorbell]
    filter_queue(page, Status="Solved")
    expect(page.get_by_text("No tickets match.")).to_be_visible()
    filter_queue(page, Status="Open", Organization="acme")
    search_queue(page, "loading")
    assert queue_ids(page) == [badge]


def test_agent_works_a_ticket_and_each_action_lands_in_its_timeline(
    page: Page, console: Console, ana: Agent, bruno: Agent, three_tickets: list[int]
) -> None:
    doorbell = three_tickets[0]
    signed_in(page, console, ana)
    submit(page, page.get_by_role("link", name=DOORBELL))
    expect(page.locator("h1")).to_contain_text(DOORBELL)
    assert page.url == f"{console.url}/console/tickets/{doorbell}"

    choose(page.locator("#status-form").get_by_label("Status"), "Solved")
    submit(page, page.get_by_role("button", name="Change status"))
    changed = timeline(page, "status_changed")
    expect(changed).to_contain_text(named(ana))
    expect(changed).to_contain_text(re.compile(r"Open.*Solved", re.DOTALL))

    choose(page.locator("#assign-form").get_by_label("Assignee"), "Bruno Agent")
    submit(page, page.get_by_role("button", name="Assign", exact=True))
    expect(timeline(page, "assigned")).to_contain_text(named(bruno))
    submit(page, page.get_by_role("button", name="Assign to me"))
    expect(timeline(page, "assigned")).to_have_count(2)
    expect(timeline(page, "assigned").last).to_contain_text(named(bruno, ana))


def test_reply_note_and_revoked_access_are_shown_in_the_timeline(
    page: Page, console: Console, ana: Agent, three_tickets: list[int]
) -> None:
    signed_in(page, console, ana)
    page.goto(f"{console.url}/console/tickets/{three_tickets[0]}")

    page.get_by_label("Reply to requester").fill("A fixed firmware is rolling out.")
    submit(page, page.get_by_role("button", name="Send reply"))
    expect(timeline(page, "replied")).to_contain_text(
        "A fixed firmware is rolling out."
    )
    page.get_by_label("Internal note").fill("Same fault as the lobby camera.")
    submit(page, page.get_by_role("button", name="Add note"))
    note = timeline(page, "note_added")
    expect(note).to_contain_text("Same fault as the lobby camera.")
    expect(note).to_contain_text(re.compile("internal", re.IGNORECASE))
    submit(page, page.get_by_role("button", name="Revoke console access"))
    expect(timeline(page, "console_access_revoked")).to_contain_text(named(ana))
    expect(page.locator("#revoke-form")).to_have_count(0)


def test_after_signing_out_the_console_asks_to_sign_in_again(
    page: Page, console: Console, ana: Agent
) -> None:
    signed_in(page, console, ana)

    submit(
        page, page.locator("form#logout-form").get_by_role("button", name="Sign out")
    )
    expect(page.locator("form#login-form")).to_be_visible()
    page.goto(f"{console.url}/console")
    assert page.url == f"{console.url}/console/login"


def test_queue_of_51_tickets_continues_on_a_second_page(
    page: Page, console: Console, ana: Agent, credentials: Credentials
) -> None:
    first = console.open_ticket(credentials, subject="Oldest", body="The first.")
    for number in range(50):
        console.open_ticket(credentials, subject=f"Camera {number}", body="Offline.")
    signed_in(page, console, ana)

    assert len(queue_ids(page)) == 50
    submit(page, page.locator('a[rel="next"]'))
    expect(page.locator("table#queue tr[data-ticket-id]")).to_have_count(1)
    assert queue_ids(page) == [first]
    expect(page.locator('a[rel="next"]')).to_have_count(0)


# Tests: what a ticket's text cannot do


def test_script_in_a_ticket_is_shown_as_text_and_never_runs(
    page: Page, console: Console, ana: Agent, credentials: Credentials
) -> None:
    dialogs: list[str] = []

    def refuse(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", refuse)
    ticket_id = console.open_ticket(
        credentials, subject=SCRIPT_IN_TICKET, body=SCRIPT_IN_TICKET
    )
    signed_in(page, console, ana)

    assert page.evaluate("window.__pwned") is None
    assert "<script>" in page.locator("table#queue").inner_text()
    response = page.goto(f"{console.url}/console/tickets/{ticket_id}")
    assert response is not None
    assert "content-security-policy" in response.headers
    assert page.evaluate("window.__pwned") is None
    assert page.locator("body").inner_text().count("<script>") >= 2
    assert dialogs == []


# Tests: keyboard and small screens


def test_keyboard_alone_signs_in_with_tab_and_enter(
    page: Page, console: Console, ana: Agent
) -> None:
    page.goto(f"{console.url}/console/login")
    email = page.get_by_label("Email")
    is_focused = "element => element === document.activeElement"

    for _ in range(10):
        if email.evaluate(is_focused):
            break
        page.keyboard.press("Tab")
    assert email.evaluate(is_focused), "Tab never reached the Email field"
    page.keyboard.type(ana.email)
    page.keyboard.press("Tab")
    assert page.get_by_label("Password").evaluate(is_focused)
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.locator("form#filters")).to_be_visible()


# A realistic queue: the screenshots' and the screen widths'


@dataclass(frozen=True)
class Seed:
    """A ticket of the realistic queue: what its organization sent, and what the
    agents have done with it since."""

    organization: str
    request: dict[str, Any]
    status: str = "Open"
    assignee: str | None = None
    path: str = "/api/help/ticket"


def ticket(
    subject: str, body: str, product: str, service: str, **more: Any
) -> dict[str, Any]:
    request = {"subject": subject, "body": body, "productType": product}
    return {**request, "serviceType": service, "consoleAccessGranted": True, **more}


REALISTIC_QUEUE = (
    Seed(
        "northwind",
        ticket(
            "Lobby camera shows a black image at night",
            "Since Monday the lobby camera records only black after 7 pm.",
            "Camera",
            "Support",
            consoleAccessGranted=False,
        ),
        status="Closed",
        assignee="maya",
    ),
    Seed(
        "acme",
        {
            "contactName": "Priya Natarajan",
            "contactPhoneNumber": "+15551234567",
            "deviceName": "PoE switch SW-16",
            "problem": "Ports 5-8 stopped giving power; the switch is 8 months old.",
            "serialNumber": "PSW-2231-HT9Q",
            "returnShippingAddress": {
                "returnAddressStreet": "500 Harbor Boulevard",
                "returnAddressCity": "Oakland",
                "returnAddressState": "CA",
                "returnAddressPostalCode": "94607",
                "returnAddressCountry": "United States",
            },
        },
        status="Solved",
        assignee="daniel",
        path="/api/help/rma",
    ),
    Seed(
        "globex",
        ticket(
            "Add 40 door badges for the new hires",
            "Please enable 40 badges for the Rotterdam office from Monday.",
            "Access control",
            "Provisioning",
        ),
        status="Pending",
        assignee="maya",
    ),
    Seed(
        "acme",
        ticket(
            "Motion alerts arrive ten minutes late",
            "Alerts from the parking lot cameras reach the phone app late.",
            "Camera",
            "Support",
            consoleAccessGranted=False,
        ),
        status="Pending",
    ),
    Seed(
        "northwind",
        ticket(
            "Audio gateway drops the intercom call after 30 seconds",
            "Calls from the gate intercom end on their own after half a minute.",
            "Audio gateway",
            "Support",
        ),
        assignee="daniel",
    ),
    Seed(
        "globex",
        ticket(
            "Environmental sensor reports 85 °C in the server room",
            "The reading jumped overnight; the room thermometer says 21 °C.",
            "Sensor",
            "Warranty",
        ),
    ),
    Seed(
        "acme",
        ticket(
            "Cannot export footage longer than one hour",
            "Exports of the warehouse camera stop at 60 minutes exactly.",
            "Camera",
            "Support",
        ),
    ),
)
# Minutes since each ticket came in, oldest first; the last is the busy ticket.
AGES_IN_MINUTES = (2880, 2100, 1500, 960, 420, 190, 75, 45)


def seed_realistic_queue(
    console: Console, make_key: MakeKey, agents: dict[str, Agent]
) -> int:
    """Fill the console with eight tickets of three organizations, of different
    kinds, ages, statuses and assignees; the id of the newest, which has a busy
    timeline and an attachment."""
    keys = {
        "acme": make_key("acme", user_email="facilities@acme.example"),
        "globex": make_key("globex", user_email="it@globex.example"),
        "northwind": make_key("northwind", user_email="security@northwind.example"),
    }
    ids = [
        console.post(keys[seed.organization], seed.path, seed.request)
        for seed in REALISTIC_QUEUE
    ]
    busy = console.open_ticket_with_file(
        keys["acme"],
        file_name="doorbell-diagnostics.log",
        content=b"2024-05-02T21:14:03Z wifi: association failed (reason 15)\n" * 40,
        **ticket(
            DOORBELL,
            "After the update to 4.2.1 last night the front door camera no longer "
            "connects to Wi-Fi. The status light blinks orange. Diagnostics log "
            "attached.",
            "Camera",
            "Support",
            collaborators=["it@acme.example", "reception@acme.example"],
            serialNumbers=["RCAM-4821-KQ7D"],
        ),
    )
    for ticket_id, minutes in zip([*ids, busy], AGES_IN_MINUTES, strict=True):
        console.backdate(ticket_id, minutes=minutes)

    store = console.store()
    try:
        for ticket_id, seed in zip(ids, REALISTIC_QUEUE, strict=True):
            handle_as_seeded(store, ticket_id, seed, agents)
        work_the_busy_ticket(store, busy, agents)
    finally:
        store.close()
    return busy


def handle_as_seeded(
    store: ConsoleStore, ticket_id: int, seed: Seed, agents: dict[str, Agent]
) -> None:
    """Assign the ticket and set its status as the seed says, a while ago."""
    if seed.assignee is not None:
        agent = agents[seed.assignee]
        at = now_ms() - 20 * MINUTE_MS
        store.assign(ticket_id, agent.id, by=agent, now_ms=at)
    if seed.status != "Open":
        actor = agents[seed.assignee or "maya"].email
        at = now_ms() - 10 * MINUTE_MS
        store.set_status(ticket_id, TicketStatus(seed.status), actor=actor, now_ms=at)


def work_the_busy_ticket(
    store: ConsoleStore, ticket_id: int, agents: dict[str, Agent]
) -> None:
    maya, daniel = agents["maya"], agents["daniel"]
    steps: list[tuple[int, Callable[[int], object]]] = [
        (40, lambda at: store.assign(ticket_id, maya.id, by=daniel, now_ms=at)),
        (
            35,
            lambda at: store.add_message(
                ticket_id,
                kind="note",
                body="Same symptom as two other 4.2.1 units; firmware team informed.",
                by=maya,
                now_ms=at,
            ),
        ),
        (
            30,
            lambda at: store.add_message(
                ticket_id,
                kind="reply",
                body=(
                    "Thanks for the log. Please hold the reset button for 10 s; "
                    "4.2.2 with a fix is rolling out today."
                ),
                by=maya,
                now_ms=at,
            ),
        ),
        (
            25,
            lambda at: store.set_status(
                ticket_id, TicketStatus.PENDING, actor=maya.email, now_ms=at
            ),
        ),
    ]
    for minutes_ago, step in steps:
        step(now_ms() - minutes_ago * MINUTE_MS)


@dataclass(frozen=True)
class BusyDesk:
    """A console with the realistic queue; ``agent`` works it."""

    agent: Agent
    busy_ticket: int


@pytest.fixture
def busy_desk(console: Console, make_key: MakeKey) -> BusyDesk:
    agents = {
        "maya": console.add_agent(
            email="maya.okafor@support.example", name="Maya Okafor"
        ),
        "daniel": console.add_agent(
            email="daniel.reyes@support.example", name="Daniel Reyes"
        ),
    }
    busy = seed_realistic_queue(console, make_key, agents)
    return BusyDesk(agents["maya"], busy)


# Tests: screens of every width, and the README's screenshots


@pytest.mark.parametrize(
    "viewport",
    [{"width": 390, "height": 844}, {"width": 1280, "height": 800}],
    ids=["phone", "laptop"],
)
def test_queue_and_ticket_fit_the_screen_without_sideways_scrolling(
    open_context: OpenContext,
    console: Console,
    busy_desk: BusyDesk,
    viewport: dict[str, int],
) -> None:
    screen = open_context(viewport=viewport).new_page()
    signed_in(screen, console, busy_desk.agent)

    assert sideways_overflow(screen) <= 1, "the queue scrolls sideways"
    screen.goto(f"{console.url}/console/tickets/{busy_desk.busy_ticket}")
    expect(screen.locator("ol#timeline")).to_be_visible()
    assert sideways_overflow(screen) <= 1, "the ticket page scrolls sideways"


def test_screenshots_of_a_busy_queue_and_ticket_are_written_for_the_readme(
    open_context: OpenContext, console: Console, busy_desk: BusyDesk
) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    queue, ticket = (
        SCREENSHOTS / "console-queue.png",
        SCREENSHOTS / "console-ticket.png",
    )
    desk = open_context(viewport={"width": 1280, "height": 800}).new_page()
    signed_in(desk, console, busy_desk.agent)

    expect(desk.locator("table#queue tr[data-ticket-id]")).to_have_count(8)
    desk.screenshot(path=queue, full_page=True)
    desk.goto(f"{console.url}/console/tickets/{busy_desk.busy_ticket}")
    expect(desk.locator("ol#timeline > li")).to_have_count(5)
    expect(desk.locator("ul#attachments")).to_contain_text("doorbell-diagnostics.log")
    desk.screenshot(path=ticket, full_page=True)
    assert queue.stat().st_size > 10_000
    assert ticket.stat().st_size > 10_000
