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
    click.echo("")
    click.echo(ticket.body or "(no body)")
    click.echo("")
    click.echo("History:")
    for event in ticket.events:
        change = f"{event.before} -> {event.after}" if event.before else event.after
        click.echo(
            f"  {iso(event.created_at_ms)}  {event.kind}  by {event.actor}  {change}"
        )


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
