"""``helpline tickets``: look at what integrators have opened."""

from __future__ import annotations

import dataclasses

import click

from helpline.cli.common import (
    admin_store,
    database_option,
    iso,
    print_json,
    print_table,
)
from helpline.domain.clock import now_ms
from helpline.domain.tickets import TicketStatus
from helpline.storage.records import TicketRecord


@click.group()
def tickets() -> None:
    """Inspect tickets."""


@tickets.command("list")
@click.option("--org", "organization", default=None, help="Only this organization.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True, help="Print every stored field.")
@database_option
def list_tickets(
    organization: str | None, limit: int, as_json: bool, database_url: str
) -> None:
    """List tickets, newest first."""
    with admin_store(database_url) as store:
        found = store.list_tickets(organization=organization, limit=limit)
    if as_json:
        print_json([dataclasses.asdict(ticket) for ticket in found])
        return
    print_table(
        ["ID", "ORG", "STATUS", "CREATED", "SUBMITTER", "SUBJECT"],
        [
            [
                str(ticket.id),
                ticket.organization,
                ticket.status,
                iso(ticket.created_at_ms),
                ticket.submitter_email,
                _shorten(ticket.subject or "(no subject)", 60),
            ]
            for ticket in found
        ],
    )


@tickets.command("show")
@click.argument("ticket_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print every stored field.")
@database_option
def show_ticket(ticket_id: int, as_json: bool, database_url: str) -> None:
    """Show one ticket with its history."""
    with admin_store(database_url) as store:
        ticket = store.get_ticket(ticket_id)
    if as_json:
        print_json(dataclasses.asdict(ticket))
        return
    _print_ticket(ticket)


@tickets.command("set-status")
@click.argument("ticket_id", type=int)
@click.argument(
    "status", metavar="STATUS", callback=lambda _c, _p, value: _status(value)
)
@click.option(
    "--by",
    "actor",
    default="operator",
    show_default=True,
    help="Who made the change, for the ticket's history.",
)
@database_option
def set_status(
    ticket_id: int, status: TicketStatus, actor: str, database_url: str
) -> None:
    """Change a ticket's status to STATUS: Open, Pending, Solved or Closed."""
    with admin_store(database_url) as store:
        change = store.set_status(ticket_id, status, actor=actor, now_ms=now_ms())
    if change.before == change.after:
        click.echo(f"ticket {ticket_id} is already {change.after}", err=True)
        return
    click.echo(f"ticket {ticket_id}: {change.before} -> {change.after}", err=True)


def _status(name: str) -> TicketStatus:
    for status in TicketStatus:
        if status.value.casefold() == name.casefold():
            return status
    known = ", ".join(status.value for status in TicketStatus)
    raise click.BadParameter(f"{name!r} is not a status; use one of {known}.")


def _print_ticket(ticket: TicketRecord) -> None:
    grant = "no"
    if ticket.console_access_granted:
        state = "revoked" if ticket.console_access_revoked_at_ms else "granted"
        grant = f"{state}, expires {iso(ticket.console_access_expires_at_ms)}"
    fields = [
        ("Ticket", str(ticket.id)),
        ("Organization", ticket.organization),
        ("Status", ticket.status),
        ("Kind", ticket.kind),
        ("Submitter", f"{ticket.submitter_email} (key {ticket.api_key_prefix})"),
        ("Created", iso(ticket.created_at_ms)),
        ("Updated", iso(ticket.updated_at_ms)),
        ("Subject", ticket.subject or "-"),
        ("Collaborators", ", ".join(ticket.collaborators or []) or "-"),
        ("Serial numbers", ", ".join(ticket.serial_numbers or []) or "-"),
        ("Product type", ticket.product_type or "-"),
        ("Service type", ticket.service_type or "-"),
        ("Console access", grant),
    ]
    for name, value in fields:
        click.echo(f"{name + ':':<16}{value}")
    if ticket.rma is not None:
        _print_rma(ticket)
    if ticket.attachments:
        click.echo("")
        click.echo("Attachments:")
        for attachment in ticket.attachments:
            click.echo(
                f"  #{attachment.id}  {attachment.file_name}  "
                f"{attachment.size_bytes} bytes  {attachment.content_type}  "
                f"sha256 {attachment.sha256}"
            )
    click.echo("")
    click.echo(ticket.body or "(no body)")
    click.echo("")
    click.echo("History:")
    for event in ticket.events:
        change = f"{event.before} -> {event.after}" if event.before else event.after
        click.echo(
            f"  {iso(event.created_at_ms)}  {event.kind}  by {event.actor}  {change}"
        )


def _print_rma(ticket: TicketRecord) -> None:
    rma = ticket.rma
    assert rma is not None  # noqa: S101
    address = ", ".join(
        part
        for part in (rma.street, rma.city, rma.state, rma.postal_code, rma.country)
        if part
    )
    click.echo("")
    click.echo("RMA:")
    for name, value in [
        ("Serial number", rma.serial_number),
        ("Device", rma.device_name or "-"),
        ("Contact", rma.contact_name or "-"),
        ("Phone", rma.contact_phone_number or "-"),
        ("Return to", address),
    ]:
        click.echo(f"  {name + ':':<15}{value}")


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
