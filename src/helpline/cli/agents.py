"""``helpline agents``: the support agents who sign in to the console."""

from __future__ import annotations

import sys

import click

from helpline.cli.common import database_option, iso, opened, print_json, print_table
from helpline.domain.agents import agent_email, agent_name, hash_password
from helpline.domain.clock import now_ms
from helpline.storage.console import ConsoleStore


@click.group()
def agents() -> None:
    """Manage the agents who work the queue in the console (/console)."""


@agents.command("create")
@click.argument("email")
@click.option("--name", default=None, help="Display name [default: from the email].")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of stdin instead of a prompt.",
)
@database_option
def create_agent(
    email: str, name: str | None, password_stdin: bool, database_url: str
) -> None:
    """Create the agent EMAIL; the password comes from a prompt (typed twice)."""
    try:
        address = agent_email(email)
        display_name = agent_name(name, email=address)
    except ValueError as problem:
        raise click.BadParameter(str(problem)) from None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        password_hash = hash_password(password)
    except ValueError as problem:
        raise click.UsageError(str(problem)) from None

    with opened(database_url, ConsoleStore) as store:
        agent = store.create_agent(
            email=address,
            name=display_name,
            password_hash=password_hash,
            now_ms=now_ms(),
        )
    click.echo(
        f"created agent {agent.email} ({agent.name}); sign in at /console", err=True
    )


@agents.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@database_option
def list_agents(as_json: bool, database_url: str) -> None:
    """List agents, disabled ones included."""
    with opened(database_url, ConsoleStore) as store:
        found = store.list_agents()
    if as_json:
        print_json(
            [
                {
                    "email": agent.email,
                    "name": agent.name,
                    "disabled": agent.disabled,
                    "created_at": iso(agent.created_at_ms),
                }
                for agent in found
            ]
        )
        return
    print_table(
        ["EMAIL", "NAME", "STATE", "CREATED"],
        [
            [
                agent.email,
                agent.name,
                "disabled" if agent.disabled else "active",
                iso(agent.created_at_ms),
            ]
            for agent in found
        ],
    )


@agents.command("disable")
@click.argument("email")
@database_option
def disable_agent(email: str, database_url: str) -> None:
    """Disable the agent EMAIL: they can no longer sign in, and their sessions end."""
    try:
        address = agent_email(email)
    except ValueError as problem:
        raise click.BadParameter(str(problem)) from None
    with opened(database_url, ConsoleStore) as store:
        agent = store.disable_agent(address, now_ms=now_ms())
    click.echo(f"disabled agent {agent.email}", err=True)
