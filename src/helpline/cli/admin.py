"""``helpline orgs`` and ``helpline keys``: tenants and their credentials."""

from __future__ import annotations

import click

from helpline.cli.common import (
    admin_store,
    database_option,
    iso,
    print_json,
    print_table,
)
from helpline.domain.clock import now_ms
from helpline.domain.failures import DomainFailure
from helpline.domain.keys import ALL_PERMISSIONS, Permission, issue_key
from helpline.domain.organizations import check_organization_name
from helpline.domain.tickets import normalize_email
from helpline.storage.records import ApiKeyInfo


@click.group()
def orgs() -> None:
    """Manage organizations (the tenants that own keys and tickets)."""


@orgs.command("create")
@click.argument("name")
@database_option
def create_organization(name: str, database_url: str) -> None:
    """Create the organization NAME."""
    try:
        check_organization_name(name)
    except ValueError as problem:
        raise click.BadParameter(str(problem), param_hint="NAME") from None
    with admin_store(database_url) as store:
        organization = store.create_organization(name, now_ms=now_ms())
    click.echo(f"created organization {organization.name}", err=True)


@orgs.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@database_option
def list_organizations(as_json: bool, database_url: str) -> None:
    """List organizations with their key and ticket counts."""
    with admin_store(database_url) as store:
        found = store.list_organizations()
    if as_json:
        print_json(
            [
                {
                    "name": org.name,
                    "created_at": iso(org.created_at_ms),
                    "api_keys": org.api_key_count,
                    "tickets": org.ticket_count,
                }
                for org in found
            ]
        )
        return
    print_table(
        ["NAME", "CREATED", "KEYS", "TICKETS"],
        [
            [
                org.name,
                iso(org.created_at_ms),
                str(org.api_key_count),
                str(org.ticket_count),
            ]
            for org in found
        ],
    )


@click.group()
def keys() -> None:
    """Manage API keys."""


@keys.command("create")
@click.option("--org", "organization", required=True, help="Organization name.")
@click.option("--user", "user_email", required=True, help="Email of the key's user.")
@click.option("--label", default=None, help="What the key is for.")
@click.option(
    "--permission",
    "permissions",
    multiple=True,
    type=click.Choice(sorted(ALL_PERMISSIONS)),
    help="Grant only these permissions (repeatable); default: all.",
)
@database_option
def create_key(
    organization: str,
    user_email: str,
    label: str | None,
    permissions: tuple[str, ...],
    database_url: str,
) -> None:
    """Create an API key and print its secret, once, on stdout.

    Only the secret goes to stdout, so a script can capture it:
    KEY=$(helpline keys create --org acme --user ops@acme.example)
    """
    try:
        email = normalize_email(user_email, path="--user")
    except DomainFailure as failure:
        raise click.BadParameter(failure.detail, param_hint="--user") from None
    granted = frozenset(Permission(name) for name in permissions) or ALL_PERMISSIONS
    issued = issue_key()
    with admin_store(database_url) as store:
        store.add_api_key(
            organization=organization,
            key=issued,
            user_email=email,
            label=label,
            permissions=granted,
            now_ms=now_ms(),
        )
    click.echo(
        f"created key {issued.prefix} for {email} in {organization}; "
        "the secret below is shown only now",
        err=True,
    )
    click.echo(issued.token)


@keys.command("list")
@click.option("--org", "organization", default=None, help="Only this organization.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@database_option
def list_keys(organization: str | None, as_json: bool, database_url: str) -> None:
    """List keys: prefix, label, user, created, last used, revoked."""
    with admin_store(database_url) as store:
        found = store.list_api_keys(organization=organization)
    if as_json:
        print_json([_key_fields(key) for key in found])
        return
    print_table(
        ["PREFIX", "ORG", "LABEL", "USER", "CREATED", "LAST USED", "REVOKED"],
        [
            [
                key.prefix,
                key.organization,
                key.label or "-",
                key.user_email,
                iso(key.created_at_ms),
                iso(key.last_used_at_ms),
                iso(key.revoked_at_ms),
            ]
            for key in found
        ],
    )


@keys.command("revoke")
@click.argument("prefix")
@database_option
def revoke_key(prefix: str, database_url: str) -> None:
    """Revoke the key with public PREFIX; it stops working within seconds."""
    with admin_store(database_url) as store:
        key = store.revoke_api_key(prefix, now_ms=now_ms())
    click.echo(f"revoked key {key.prefix} at {iso(key.revoked_at_ms)}", err=True)


def _key_fields(key: ApiKeyInfo) -> dict[str, object]:
    return {
        "prefix": key.prefix,
        "organization": key.organization,
        "label": key.label,
        "user": key.user_email,
        "permissions": list(key.permissions),
        "created_at": iso(key.created_at_ms),
        "last_used_at": None
        if key.last_used_at_ms is None
        else iso(key.last_used_at_ms),
        "revoked_at": None if key.revoked_at_ms is None else iso(key.revoked_at_ms),
    }
