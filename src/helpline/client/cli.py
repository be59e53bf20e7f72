"""``helpline-remote``: open tickets on a Helpline or Rhombus server over its API.

This is the remote client's command line. The local admin command, ``helpline``,
works on a server's own database; this one only speaks HTTP and needs an API key.

Exit status: 0 when the ticket was opened (its id is the only output on stdout),
1 when the server declined it (the reason goes to stderr), 2 when the request
could not be made or was refused (a usage, API or connection problem).
"""

from __future__ import annotations

from typing import NoReturn

import click

from helpline.client._http import HelpClient
from helpline.client._wire import TicketResult
from helpline.client.errors import (
    HelpAuthError,
    HelpClientError,
    HelpRetriesExhausted,
)

EXIT_DECLINED = 1
EXIT_NOT_DELIVERED = 2

_PROGRAM = "helpline-remote"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def helpline_remote() -> None:
    """Open support tickets on a Helpline or Rhombus Help Webservice server."""


@helpline_remote.command("open-ticket")
@click.option(
    "--url",
    envvar="HELPLINE_URL",
    show_envvar=True,
    required=True,
    help="Base URL of the server, such as https://helpline.example.",
)
@click.option(
    "--api-key",
    envvar="HELPLINE_API_KEY",
    show_envvar=True,
    required=True,
    help="API key sent as x-auth-apikey. Prefer the environment variable.",
)
@click.option("--subject", required=True, help="One-line summary of the problem.")
@click.option("--body", help="Full description of the problem.")
@click.option(
    "--collaborator",
    "collaborators",
    multiple=True,
    metavar="EMAIL",
    help="Address to keep informed; repeat for several.",
)
@click.option(
    "--serial-number",
    "serial_numbers",
    multiple=True,
    metavar="SN",
    help="Serial number of an affected device; repeat for several.",
)
@click.option("--product-type", help="Product the ticket is about.")
@click.option("--service-type", help="Kind of service requested.")
@click.option(
    "--console-access/--no-console-access",
    default=None,
    help="Whether support may use the console to troubleshoot. Unsent if omitted.",
)
@click.option(
    "--idempotency-key",
    help="Reuse the key of an earlier, unconfirmed attempt to avoid a duplicate.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="Seconds to wait for each attempt.",
)
@click.option(
    "--max-attempts",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Attempts before giving up on 429, 5xx or connection failures.",
)
def open_ticket(
    *,
    url: str,
    api_key: str,
    subject: str,
    body: str | None,
    collaborators: tuple[str, ...],
    serial_numbers: tuple[str, ...],
    product_type: str | None,
    service_type: str | None,
    console_access: bool | None,
    idempotency_key: str | None,
    timeout: float,
    max_attempts: int,
) -> None:
    """Open a ticket and print its id."""
    try:
        with HelpClient(
            url, api_key, timeout=timeout, max_attempts=max_attempts
        ) as client:
            result = client.open_ticket(
                subject=subject,
                body=body,
                collaborators=collaborators or None,
                serial_numbers=serial_numbers or None,
                product_type=product_type,
                service_type=service_type,
                console_access_granted=console_access,
                idempotency_key=idempotency_key,
            )
    except ValueError as problem:
        raise click.UsageError(str(problem)) from None
    except HelpClientError as problem:
        _stop(_explain(problem), EXIT_NOT_DELIVERED)

    _report(result)


def main() -> None:
    """Run ``helpline-remote``; the console-script entry point."""
    helpline_remote(prog_name=_PROGRAM)


def _report(result: TicketResult) -> None:
    if result.warning_msg:
        click.echo(f"warning: {result.warning_msg}", err=True)

    if not result.success:
        reason = result.failure_reason or "ticket not opened"
        declined = f"{reason}: {result.error_msg}" if result.error_msg else reason
        _stop(declined, EXIT_DECLINED)

    if result.ticket_id is None:
        _stop(
            f"{_PROGRAM}: the server reported success but no ticket id",
            EXIT_NOT_DELIVERED,
        )

    if result.replayed:
        click.echo("note: an earlier request with this key opened it", err=True)

    click.echo(result.ticket_id)


def _explain(problem: HelpClientError) -> str:
    explanation = f"{_PROGRAM}: {problem}"
    if isinstance(problem, HelpAuthError):
        return f"{explanation}; check --api-key or HELPLINE_API_KEY"

    if isinstance(problem, HelpRetriesExhausted):
        return (
            f"{explanation}; it is safe to run again with "
            f"--idempotency-key {problem.idempotency_key}"
        )

    return explanation


def _stop(message: str, exit_code: int) -> NoReturn:
    click.echo(message, err=True)
    raise click.exceptions.Exit(exit_code)
