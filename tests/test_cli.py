"""The operator's command line, run through click against a real SQLite file."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from helpline.cli import cli
from helpline.storage.admin import AdminStore
from helpline.storage.migrate import head_revision

from .conftest import VALID_REQUEST, LiveServer, MakeKey


def run(database_url: str, *arguments: str) -> Result:
    return CliRunner().invoke(cli, [*arguments, "--database", database_url])


def test_orgs_create_and_list(database_url: str) -> None:
    created = run(database_url, "orgs", "create", "acme")
    listed = run(database_url, "orgs", "list", "--json")

    assert created.exit_code == 0, created.output
    assert [org["name"] for org in json.loads(listed.stdout)] == ["acme"]


@pytest.mark.parametrize("name", ["Acme", "acme-", "a b", "x" * 101, ""])
def test_orgs_create_refuses_invalid_names(database_url: str, name: str) -> None:
    result = run(database_url, "orgs", "create", name)

    assert result.exit_code == 2
    assert "invalid organization name" in result.stderr


def test_orgs_create_refuses_a_taken_name(database_url: str) -> None:
    run(database_url, "orgs", "create", "acme")

    again = run(database_url, "orgs", "create", "acme")

    assert again.exit_code == 1
    assert "an organization named 'acme' already exists" in again.stderr


def test_keys_create_prints_only_the_secret_on_stdout(
    database_url: str, server: LiveServer
) -> None:
    run(database_url, "orgs", "create", "acme")

    result = run(
        database_url,
        "keys",
        "create",
        "--org",
        "acme",
        "--user",
        "Ops@Acme.Example",
        "--label",
        "integration",
    )

    token = result.stdout.strip()
    assert result.exit_code == 0
    assert result.stdout == token + "\n"
    assert token.startswith("hlk_")
    assert "shown only now" in result.stderr
    response = httpx.post(
        f"{server.url}/api/help/ticket",
        json=VALID_REQUEST,
        headers={"x-auth-apikey": token, "x-auth-scheme": "api-token"},
    )
    assert response.json()["success"] is True


def test_keys_create_for_a_missing_organization_fails(database_url: str) -> None:
    result = run(database_url, "keys", "create", "--org", "nope", "--user", "a@b.co")

    assert result.exit_code == 1
    assert "no organization is named 'nope'" in result.stderr
    assert result.stdout == ""


def test_keys_create_refuses_an_invalid_user(database_url: str) -> None:
    run(database_url, "orgs", "create", "acme")

    result = run(database_url, "keys", "create", "--org", "acme", "--user", "nobody")

    assert result.exit_code == 2
    assert result.stdout == ""


def test_keys_list_shows_metadata_but_never_the_secret(
    database_url: str, admin: AdminStore
) -> None:
    run(database_url, "orgs", "create", "acme")
    token = run(
        database_url,
        "keys",
        "create",
        "--org",
        "acme",
        "--user",
        "a@acme.example",
        "--label",
        "ci",
    ).stdout.strip()

    listed = run(database_url, "keys", "list", "--org", "acme")
    as_json = json.loads(run(database_url, "keys", "list", "--json").stdout)

    prefix = token.split("_")[1]
    assert prefix in listed.stdout
    assert "a@acme.example" in listed.stdout
    assert token not in listed.stdout
    assert as_json[0]["prefix"] == prefix
    assert as_json[0]["label"] == "ci"
    assert as_json[0]["revoked_at"] is None
    assert set(as_json[0]) >= {"created_at", "last_used_at", "user"}


def test_keys_revoke_stops_the_key(database_url: str, server: LiveServer) -> None:
    run(database_url, "orgs", "create", "acme")
    token = run(
        database_url, "keys", "create", "--org", "acme", "--user", "a@acme.example"
    ).stdout.strip()

    revoked = run(database_url, "keys", "revoke", token.split("_")[1])
    response = httpx.post(
        f"{server.url}/api/help/ticket",
        json=VALID_REQUEST,
        headers={"x-auth-apikey": token, "x-auth-scheme": "api-token"},
    )

    assert revoked.exit_code == 0
    assert response.status_code == 401
    listed = json.loads(run(database_url, "keys", "list", "--json").stdout)
    assert listed[0]["revoked_at"] is not None


def test_keys_revoke_unknown_prefix_fails(database_url: str) -> None:
    result = run(database_url, "keys", "revoke", "nosuchkey0")

    assert result.exit_code == 1
    assert "no API key has the prefix" in result.stderr


def test_tickets_list_and_show(
    database_url: str, server: LiveServer, make_key: MakeKey
) -> None:
    acme = make_key("acme")
    other = make_key("globex")
    for credentials, subject in [(acme, "First"), (other, "Second")]:
        httpx.post(
            f"{server.url}/api/help/ticket",
            json={**VALID_REQUEST, "subject": subject},
            headers=credentials.headers(),
        )

    listed = json.loads(run(database_url, "tickets", "list", "--json").stdout)
    only_acme = json.loads(
        run(database_url, "tickets", "list", "--org", "acme", "--json").stdout
    )
    shown = json.loads(run(database_url, "tickets", "show", "1", "--json").stdout)
    text = run(database_url, "tickets", "show", "1").stdout

    assert [ticket["subject"] for ticket in listed] == ["Second", "First"]
    assert [ticket["subject"] for ticket in only_acme] == ["First"]
    expected_fields = {
        "id",
        "organization",
        "api_key_prefix",
        "submitter_email",
        "kind",
        "status",
        "subject",
        "body",
        "collaborators",
        "serial_numbers",
        "product_type",
        "service_type",
        "console_access_granted",
        "console_access_expires_at_ms",
        "created_at_ms",
        "updated_at_ms",
        "events",
    }
    assert expected_fields <= set(shown)
    assert shown["collaborators"] == ["it@acme.example"]
    assert shown["events"][0]["kind"] == "created"
    assert "Console access: granted, expires" in text
    assert VALID_REQUEST["body"] in text


def test_tickets_show_unknown_id_fails(database_url: str) -> None:
    result = run(database_url, "tickets", "show", "999")

    assert result.exit_code == 1
    assert "no ticket has the id 999" in result.stderr


def test_db_upgrade_and_current(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/fresh.db"

    before = run(url, "db", "current")
    upgraded = run(url, "db", "upgrade")
    after = run(url, "db", "current")

    assert before.stdout.strip() == "none"
    assert upgraded.exit_code == 0
    assert after.stdout.strip() == head_revision()


def test_unsupported_database_url_is_a_usage_error() -> None:
    result = CliRunner().invoke(
        cli, ["orgs", "list", "--database", "mysql://localhost/helpline"]
    )

    assert result.exit_code == 2
    assert "unsupported database URL" in result.stderr


def test_only_a_digest_of_the_key_is_stored(
    database_url: str, admin: AdminStore
) -> None:
    run(database_url, "orgs", "create", "acme")
    token = run(
        database_url, "keys", "create", "--org", "acme", "--user", "a@acme.example"
    ).stdout.strip()
    secret = token.split("_", 2)[2]

    with admin.engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT * FROM api_keys")).all()

    stored = " ".join(str(value) for value in rows[0])
    assert secret not in stored
    assert hashlib.sha256(token.encode()).hexdigest() in stored
    assert len(secret) >= 22  # at least 128 bits of URL-safe base64
