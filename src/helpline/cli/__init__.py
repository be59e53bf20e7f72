"""``helpline``: the operator's command line (serve, database, organizations, keys,
tickets, agents, webhooks, the outbox and its worker). Results go to stdout;
messages for the operator go to stderr."""

from __future__ import annotations

import click

from helpline.cli.admin import keys, orgs
from helpline.cli.agents import agents
from helpline.cli.attachments import attachments
from helpline.cli.database import db
from helpline.cli.feedback import feedback
from helpline.cli.outbox import outbox, webhooks, worker
from helpline.cli.serve import serve
from helpline.cli.tickets import tickets


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="helpline")
def cli() -> None:
    """Helpline: a support-ticket service that speaks the Rhombus Help API."""


cli.add_command(serve)
cli.add_command(db)
cli.add_command(orgs)
cli.add_command(keys)
cli.add_command(tickets)
cli.add_command(attachments)
cli.add_command(feedback)
cli.add_command(agents)
cli.add_command(webhooks)
cli.add_command(outbox)
cli.add_command(worker)


def main() -> None:
    cli()
