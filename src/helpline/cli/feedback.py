"""``helpline feedback``: what integrators sent to /api/help/feedback."""

from __future__ import annotations

import click

from helpline.cli.common import admin_store, database_option, iso, print_json


@click.group()
def feedback() -> None:
    """Read feedback."""


@feedback.command("list")
@click.option("--org", "organization", default=None, help="Only this organization.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@database_option
def list_feedback(
    organization: str | None, limit: int, as_json: bool, database_url: str
) -> None:
    """List feedback, newest first."""
    with admin_store(database_url) as store:
        found = store.list_feedback(organization=organization, limit=limit)
    if as_json:
        print_json(
            [
                {
                    "id": entry.id,
                    "organization": entry.organization,
                    "user_email": entry.user_email,
                    "feedback": entry.feedback,
                    "created_at": iso(entry.created_at_ms),
                }
                for entry in found
            ]
        )
        return
    for entry in found:
        click.echo(
            f"#{entry.id}  {iso(entry.created_at_ms)}  {entry.organization}  "
            f"{entry.user_email}"
        )
        click.echo(f"    {entry.feedback}")
