"""``helpline attachments``: list the files sent with a ticket, save one, and sweep
away the files no ticket needs.

The files are read from the blob store the server writes to: beside the database,
or in ``HELPLINE_BLOB_DIR`` when that is set.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import BinaryIO

import click

from helpline.cli.common import (
    admin_store,
    database_option,
    iso,
    print_json,
    print_table,
)
from helpline.config import ConfigError, load_settings
from helpline.domain.attachments import sanitize_file_name
from helpline.storage.blobs import BlobStore, blob_root_for
from helpline.storage.records import AttachmentRecord

_COPY_CHUNK_BYTES = 1024 * 1024


@click.group()
def attachments() -> None:
    """Files sent with tickets."""


@attachments.command("list")
@click.argument("ticket_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print every stored field.")
@database_option
def list_attachments(ticket_id: int, as_json: bool, database_url: str) -> None:
    """List the files of one ticket."""
    with admin_store(database_url) as store:
        found = store.list_attachments(ticket_id)
    if as_json:
        print_json([dataclasses.asdict(record) for record in found])
        return
    print_table(
        ["ID", "FILE NAME", "SIZE", "CONTENT TYPE", "CREATED", "SHA-256"],
        [
            [
                str(record.id),
                record.file_name,
                str(record.size_bytes),
                record.content_type,
                iso(record.created_at_ms),
                record.sha256,
            ]
            for record in found
        ],
    )


@attachments.command("save")
@click.argument("attachment_id", type=int)
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    default=None,
    help="File (or directory) to write to [default: the file's name, here].",
)
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@database_option
def save_attachment(
    attachment_id: int, output: Path | None, force: bool, database_url: str
) -> None:
    """Write the file of one attachment out, checking it against its SHA-256.

    Prints the path written on stderr.
    """
    with admin_store(database_url) as store:
        record = store.get_attachment(attachment_id)
    blobs = BlobStore(_blob_root(database_url))

    # The stored name was cleaned on the way in; cleaning it again costs nothing
    # and keeps a name written by anything else from choosing the directory.
    target = output or Path(sanitize_file_name(record.file_name))
    if target.is_dir():
        target = target / sanitize_file_name(record.file_name)
    try:
        source = blobs.open(record.sha256)
    except FileNotFoundError:
        raise click.ClickException(
            f"the file of attachment {attachment_id} is missing from the blob store "
            f"({blobs.path_of(record.sha256)})"
        ) from None
    with source:
        _write_checked(source, target, record=record, force=force)
    click.echo(str(target), err=True)


@attachments.command("sweep")
@click.option(
    "--min-age",
    "min_age_s",
    type=click.FloatRange(min=0),
    default=3600,
    show_default=True,
    help="Seconds a file must have been left untouched before it is removed.",
)
@database_option
def sweep_attachments(min_age_s: float, database_url: str) -> None:
    """Remove stored files no attachment refers to.

    They are left by uploads whose ticket failed or was a replay on PostgreSQL
    (where another node may be storing the same file at that moment), and by
    uploads a crash interrupted. Safe while servers run.
    """
    root = _blob_root(database_url)
    with admin_store(database_url) as store:
        result = BlobStore(root).sweep(
            is_attached=store.is_blob_attached, older_than_s=min_age_s
        )
    click.echo(
        f"removed {result.removed} files ({result.removed_bytes} bytes) from "
        f"{root}; kept {result.kept} attached files",
        err=True,
    )


def _blob_root(database_url: str) -> Path:
    """Where the server keeps the files of ``database_url``."""
    try:
        return blob_root_for(database_url, load_settings().blob_dir)
    except (ConfigError, ValueError) as problem:
        raise click.UsageError(str(problem)) from None


def _write_checked(
    source: BinaryIO, target: Path, *, record: AttachmentRecord, force: bool
) -> None:
    """Copy ``source`` to ``target``, refusing to overwrite unless ``force``.

    A copy whose digest differs from the record's is removed, and the command
    fails: the stored file was damaged.
    """
    try:
        # "x" creates the file or fails, in one step: no race with another writer.
        destination = target.open("wb" if force else "xb")
    except FileExistsError:
        raise click.ClickException(
            f"{target} already exists; pass --force to overwrite it"
        ) from None
    except OSError as problem:
        raise click.ClickException(f"cannot write {target}: {problem}") from None

    digest = hashlib.sha256()
    with destination:
        while chunk := source.read(_COPY_CHUNK_BYTES):
            digest.update(chunk)
            destination.write(chunk)
    if digest.hexdigest() != record.sha256:
        target.unlink()
        raise click.ClickException(
            f"the stored file of attachment {record.id} is damaged: its SHA-256 is "
            f"{digest.hexdigest()}, not {record.sha256}; nothing was written"
        )
