"""POST /api/help/ticketWithFile over real HTTP: the form, the file, the blob store."""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from helpline.cli import cli
from helpline.domain.attachments import (
    MAX_FILE_NAME_BYTES,
    detect_content_type,
    sanitize_file_name,
)
from helpline.storage.admin import AdminStore
from helpline.storage.blobs import BlobStore, blob_root_for
from helpline.storage.schema import attachments

from .conftest import VALID_REQUEST, Credentials, LiveServer, StartServer
from .test_server_process import ServerProcess, bootstrap_token
from .test_ticket_api import read_response

URL = "/api/help/ticketWithFile"
BAD_STRUCTURE = "JSON doesn't match expected object structure"
BOUNDARY = "helpline-test-7d1f0c"
FORM_TYPE = f"multipart/form-data; boundary={BOUNDARY}"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
MIB = 1024 * 1024


# Building and sending forms


def form_part(
    disposition: bytes, content: bytes, *, content_type: bytes | None = None
) -> bytes:
    """One part of a hand-built body, with its leading boundary."""
    headers = b"Content-Disposition: " + disposition + b"\r\n"
    if content_type is not None:
        headers += b"Content-Type: " + content_type + b"\r\n"
    return b"--" + BOUNDARY.encode() + b"\r\n" + headers + b"\r\n" + content + b"\r\n"


def request_part(payload: Any = VALID_REQUEST) -> bytes:
    return form_part(b'form-data; name="request"', json.dumps(payload).encode())


def file_part(
    content: bytes, *, file_name: bytes = b"notes.txt", name: bytes = b"file"
) -> bytes:
    disposition = b'form-data; name="' + name + b'"; filename="' + file_name + b'"'
    return form_part(disposition, content, content_type=b"application/octet-stream")


def form_body(*parts: bytes) -> bytes:
    return b"".join(parts) + b"--" + BOUNDARY.encode() + b"--\r\n"


def post_raw(
    client: httpx.Client | LiveServer,
    credentials: Credentials,
    body: bytes,
    *,
    content_type: str = FORM_TYPE,
    **headers: str,
) -> httpx.Response:
    all_headers = credentials.headers(**{"content-type": content_type, **headers})
    if isinstance(client, LiveServer):
        return httpx.post(client.url + URL, content=body, headers=all_headers)
    return client.post(URL, content=body, headers=all_headers)


def post_form(
    api: httpx.Client,
    credentials: Credentials,
    *,
    payload: Any = VALID_REQUEST,
    file: tuple[str, bytes, str] | None = None,
    **headers: str,
) -> httpx.Response:
    """A form as an integrator's HTTP library builds it."""
    parts: dict[str, Any] = {"request": (None, json.dumps(payload), "application/json")}
    if file is not None:
        parts["file"] = file
    return api.post(URL, files=parts, headers=credentials.headers(**headers))


# Looking at what was stored


@pytest.fixture
def blob_root(database_url: str, blob_dir: str | None) -> Path:
    return blob_root_for(database_url, blob_dir)


def stored_attachments(admin: AdminStore) -> list[dict[str, Any]]:
    query = sa.select(attachments).order_by(attachments.c.id)
    with admin.engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(query)]


def blobs_in(root: Path) -> list[Path]:
    """Every published blob under ``root`` (temporary files excluded)."""
    if not root.exists():
        return []
    return sorted(
        path
        for path in root.rglob("*")
        if path.is_file() and path.relative_to(root).parts[0] != "tmp"
    )


def temporary_files(root: Path) -> list[Path]:
    return list((root / "tmp").iterdir()) if (root / "tmp").exists() else []


def assert_nothing_stored(admin: AdminStore, root: Path) -> None:
    assert admin.count_tickets() == 0
    assert stored_attachments(admin) == []
    assert blobs_in(root) == []
    assert temporary_files(root) == []


# Success


def test_file_is_stored_with_its_ticket_at_its_content_address(
    api: httpx.Client, credentials: Credentials, admin: AdminStore, blob_root: Path
) -> None:
    # The client's part type is wrong on purpose: the bytes decide.
    response = post_form(api, credentials, file=("Screen shot.png", PNG, "text/plain"))

    body = response.json()
    assert response.status_code == 200
    assert body["success"] is True
    digest = hashlib.sha256(PNG).hexdigest()
    [row] = stored_attachments(admin)
    assert row["ticket_id"] == body["ticketId"]
    assert row["file_name"] == "Screen shot.png"
    assert row["size_bytes"] == len(PNG)
    assert row["content_type"] == "image/png"
    assert row["sha256"] == digest
    blob = blob_root / digest[:2] / digest[2:4] / digest
    assert blobs_in(blob_root) == [blob]
    assert blob.read_bytes() == PNG
    assert temporary_files(blob_root) == []


def test_ticket_without_a_file_is_stored_without_attachment(
    api: httpx.Client, credentials: Credentials, admin: AdminStore, blob_root: Path
) -> None:
    response = post_form(api, credentials)

    assert response.json()["success"] is True
    assert admin.count_tickets() == 1
    assert stored_attachments(admin) == []
    assert blobs_in(blob_root) == []


def test_empty_file_is_an_attachment_of_zero_bytes(
    api: httpx.Client, credentials: Credentials, admin: AdminStore, blob_root: Path
) -> None:
    response = post_form(api, credentials, file=("empty.log", b"", "text/plain"))

    assert response.json()["success"] is True
    [row] = stored_attachments(admin)
    assert row["size_bytes"] == 0
    assert row["sha256"] == hashlib.sha256(b"").hexdigest()
    assert [blob.read_bytes() for blob in blobs_in(blob_root)] == [b""]


def test_file_may_come_before_the_request_part(
    api: httpx.Client, credentials: Credentials, admin: AdminStore
) -> None:
    body = form_body(file_part(b"first"), request_part())

    response = post_raw(api, credentials, body)

    assert response.json()["success"] is True
    assert [row["size_bytes"] for row in stored_attachments(admin)] == [5]


def test_request_part_sent_as_an_upload_is_still_the_request(
    api: httpx.Client, credentials: Credentials, admin: AdminStore
) -> None:
    request = form_part(
        b'form-data; name="request"; filename="ticket.json"',
        json.dumps(VALID_REQUEST).encode(),
        content_type=b"application/json",
    )

    response = post_raw(api, credentials, form_body(request, file_part(b"log")))

    assert response.json()["success"] is True
    assert [row["file_name"] for row in stored_attachments(admin)] == ["notes.txt"]


def test_same_content_twice_is_one_blob_for_two_attachments(
    api: httpx.Client, credentials: Credentials, admin: AdminStore, blob_root: Path
) -> None:
    first = post_form(api, credentials, file=("a.png", PNG, "image/png"))
    second = post_form(api, credentials, file=("b.png", PNG, "image/png"))

    rows = stored_attachments(admin)
    assert first.json()["ticketId"] != second.json()["ticketId"]
    assert [row["file_name"] for row in rows] == ["a.png", "b.png"]
    assert len({row["sha256"] for row in rows}) == 1
    assert len(blobs_in(blob_root)) == 1


def test_blob_dir_setting_moves_the_blob_store(
    start_server: StartServer, credentials: Credentials, tmp_path: Path
) -> None:
    server = start_server(blob_dir=str(tmp_path / "uploads"))

    with httpx.Client(base_url=server.url) as client:
        response = post_form(client, credentials, file=("a.png", PNG, "image/png"))

    assert response.json()["success"] is True
    assert len(blobs_in(tmp_path / "uploads")) == 1
    assert blobs_in(tmp_path / "helpline.db.files") == []


def test_unknown_parts_are_ignored_and_named_in_the_warning(
    api: httpx.Client, credentials: Credentials, admin: AdminStore
) -> None:
    payload = json.dumps({**VALID_REQUEST, "priority": 1})
    parts = {"request": (None, payload), "note": (None, "hi"), "tag": (None, "x")}

    response = api.post(URL, files=parts, headers=credentials.headers())

    body = response.json()
    assert body["success"] is True
    assert body["warningMsg"] == (
        "priority: unknown field, ignored; note: unknown part, ignored; "
        "tag: unknown part, ignored"
    )
    assert stored_attachments(admin) == []


# File names and types: never the client's word alone


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        (b"../../etc/passwd", "passwd"),
        (b"C:\\x\\evil.exe", "evil.exe"),
        (b"..\\..\\boot.ini", "boot.ini"),
        (b"bell\x07and\x1bescape.txt", "bellandescape.txt"),
        (b"/", "attachment"),
        (b"..", "attachment"),
    ],
)
def test_hostile_file_name_is_cleaned_and_never_used_as_a_path(
    api: httpx.Client,
    credentials: Credentials,
    admin: AdminStore,
    blob_root: Path,
    tmp_path: Path,
    raw: bytes,
    stored: str,
) -> None:
    before = sorted(tmp_path.rglob("*"))
    body = form_body(request_part(), file_part(b"hostile", file_name=raw))

    response = post_raw(api, credentials, body)

    assert response.json()["success"] is True
    assert [row["file_name"] for row in stored_attachments(admin)] == [stored]
    digest = hashlib.sha256(b"hostile").hexdigest()
    assert blobs_in(blob_root) == [blob_root / digest[:2] / digest[2:4] / digest]
    created = set(tmp_path.rglob("*")) - set(before)
    assert all(path.is_relative_to(blob_root) for path in created)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, "attachment"),
        ("", "attachment"),
        ("...", "attachment"),
        ("report.pdf", "report.pdf"),
        ("a/b\\c.txt", "c.txt"),
        (".bashrc", "bashrc"),
        ("  two   words\there.txt ", "two words here.txt"),
        ("line\nbreak.txt", "line break.txt"),
        ("nul\x00byte.txt", "nulbyte.txt"),
        ("evil\u202egpj.exe", "evilgpj.exe"),
        ("cafe\u0301.txt", "caf\u00e9.txt"),
    ],
)
def test_sanitize_file_name(raw: str | None, expected: str) -> None:
    assert sanitize_file_name(raw) == expected


def test_long_file_name_is_cut_to_255_bytes_keeping_its_extension() -> None:
    cleaned = sanitize_file_name("\u00e9" * 300 + ".tar.gz")

    assert len(cleaned.encode()) <= MAX_FILE_NAME_BYTES
    assert len(cleaned.encode()) >= MAX_FILE_NAME_BYTES - 1  # one 2-byte char
    assert cleaned.endswith("\u00e9.gz")


@pytest.mark.parametrize(
    ("head", "file_name", "expected"),
    [
        (PNG, "x.bin", "image/png"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "x", "image/jpeg"),
        (b"GIF89a\x01\x00", "x.png", "image/gif"),
        (b"%PDF-1.7\n", "x.txt", "application/pdf"),
        (b"PK\x03\x04\x14\x00", "x", "application/zip"),
        (
            b"PK\x03\x04\x14\x00",
            "x.docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
        (b"\x1f\x8b\x08\x00", "x.tar.gz", "application/gzip"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "x", "image/webp"),
        (b"\x00\x00\x00\x18ftypmp42", "x.mov", "video/mp4"),
        (b"Camera log\nline 2\n", "x.bin", "text/plain"),
        ("Caf\u00e9 log".encode(), "x", "text/plain"),
        ("Caf\u00e9".encode()[:-1], "x", "text/plain"),  # cut mid-character
        (b"id,serial\n1,RCAM-1\n", "x.csv", "text/csv"),
        (b"\x00\x01\x02\x03", "x.png", "application/octet-stream"),
        (b"\x00\x01\x02\x03", "x.txt", "application/octet-stream"),
        (b"\x00\x01\x02\x03", "x.docx", "application/octet-stream"),
        (b"\x00\x01\x02\x03", "x", "application/octet-stream"),
        (b"\x00\x01\x02\x03", "x.mp3", "audio/mpeg"),
        (b"", "x.exe", "application/octet-stream"),
    ],
)
def test_detect_content_type(head: bytes, file_name: str, expected: str) -> None:
    assert detect_content_type(head, file_name) == expected


# Domain failures: 200, nothing stored, no blob, no temporary file


def test_file_over_the_limit_is_refused_and_leaves_nothing(
    start_server: StartServer, credentials: Credentials, admin: AdminStore
) -> None:
    server = start_server(max_file_bytes=1024)
    root = blob_root_for(server.settings.database_url, server.settings.blob_dir)
    body = form_body(request_part(), file_part(b"x" * 5000))

    response = post_raw(server, credentials, body)

    answer = response.json()
    assert response.status_code == 200
    assert answer["failureReason"] == "File too large"
    assert "1024 bytes" in answer["errorMsg"]
    assert_nothing_stored(admin, root)


def test_file_at_the_limit_is_accepted(
    start_server: StartServer, credentials: Credentials, admin: AdminStore
) -> None:
    server = start_server(max_file_bytes=1024)

    response = post_raw(
        server, credentials, form_body(request_part(), file_part(b"x" * 1024))
    )

    assert response.json()["success"] is True
    assert [row["size_bytes"] for row in stored_attachments(admin)] == [1024]


def test_file_over_the_limit_is_refused_before_the_body_ends(
    start_server: StartServer, credentials: Credentials, admin: AdminStore
) -> None:
    server = start_server(max_file_bytes=1024)
    root = blob_root_for(server.settings.database_url, server.settings.blob_dir)
    start = request_part() + file_part(b"x" * 4096)[:-2]
    head = (
        f"POST {URL} HTTP/1.1\r\nHost: test\r\nContent-Type: {FORM_TYPE}\r\n"
        f"Content-Length: {len(start) + 500_000}\r\n"  # a promise never kept
        f"x-auth-apikey: {credentials.token}\r\nx-auth-scheme: api-token\r\n\r\n"
    )

    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
        conn.sendall(head.encode() + start)
        answer = read_response(conn)

    assert answer.startswith(b"HTTP/1.1 200 ")
    assert b'"failureReason":"File too large"' in answer
    assert_nothing_stored(admin, root)


@pytest.mark.parametrize(
    "second_file",
    [
        file_part(b"two", file_name=b"two.txt"),
        file_part(b"two", file_name=b"two.txt", name=b"attachment"),
    ],
    ids=["two-file-parts", "second-part-with-a-file-name"],
)
def test_more_than_one_file_is_refused(
    api: httpx.Client,
    credentials: Credentials,
    admin: AdminStore,
    blob_root: Path,
    second_file: bytes,
) -> None:
    body = form_body(request_part(), file_part(b"one"), second_file)

    response = post_raw(api, credentials, body)

    assert response.json()["failureReason"] == "Too many files"
    assert_nothing_stored(admin, blob_root)


def test_missing_request_part_is_refused(
    api: httpx.Client, credentials: Credentials, admin: AdminStore, blob_root: Path
) -> None:
    response = post_raw(api, credentials, form_body(file_part(b"orphan")))

    answer = response.json()
    assert response.status_code == 200
    assert answer["failureReason"] == "Missing request part"
    assert answer["ticketId"] is None
    assert_nothing_stored(admin, blob_root)


def test_invalid_ticket_is_refused_and_its_file_not_kept(
    api: httpx.Client, credentials: Credentials, admin: AdminStore, blob_root: Path
) -> None:
    payload = {**VALID_REQUEST, "collaborators": ["<string>"]}

    response = post_form(api, credentials, payload=payload, file=("a.png", PNG, "x/y"))

    assert response.json()["failureReason"] == "Invalid email address"
    assert_nothing_stored(admin, blob_root)


# Idempotency


def test_replay_with_the_same_file_answers_the_first_ticket_and_keeps_one_blob(
    api: httpx.Client, credentials: Credentials, admin: AdminStore, blob_root: Path
) -> None:
    file = ("a.png", PNG, "image/png")

    first = post_form(api, credentials, file=file, **{"idempotency-key": "k-1"})
    again = post_form(api, credentials, file=file, **{"idempotency-key": "k-1"})

    assert again.json()["ticketId"] == first.json()["ticketId"]
    assert again.headers["idempotent-replayed"] == "true"
    assert admin.count_tickets() == 1
    assert len(stored_attachments(admin)) == 1
    # The replay must not remove the blob the first ticket refers to.
    assert [blob.read_bytes() for blob in blobs_in(blob_root)] == [PNG]


@pytest.mark.backends("sqlite")
def test_reused_key_with_another_file_is_refused_and_that_file_removed(
    api: httpx.Client, credentials: Credentials, admin: AdminStore, blob_root: Path
) -> None:
    post_form(api, credentials, file=("a.png", PNG, "x"), **{"idempotency-key": "k"})

    reused = post_form(
        api, credentials, file=("b.txt", b"other", "x"), **{"idempotency-key": "k"}
    )

    assert reused.json()["failureReason"] == "Idempotency key reused"
    assert [blob.read_bytes() for blob in blobs_in(blob_root)] == [PNG]
    assert temporary_files(blob_root) == []


@pytest.mark.backends("sqlite")
def test_storage_failure_after_the_file_is_published_removes_it(
    start_server: StartServer, credentials: Credentials, admin: AdminStore
) -> None:
    server = start_server(max_pending_writes=0)
    root = blob_root_for(server.settings.database_url, server.settings.blob_dir)

    response = post_raw(server, credentials, form_body(request_part(), file_part(PNG)))

    assert response.status_code == 503
    assert_nothing_stored(admin, root)


@pytest.mark.backends("postgresql")
def test_on_postgres_a_failed_uploads_file_waits_for_a_sweep(
    start_server: StartServer, credentials: Credentials, admin: AdminStore
) -> None:
    # Another node may be storing the same content this moment: no node removes a
    # file at once, the sweep does once it has been left alone long enough.
    server = start_server(max_pending_writes=0)
    root = blob_root_for(server.settings.database_url, server.settings.blob_dir)
    response = post_raw(server, credentials, form_body(request_part(), file_part(PNG)))
    kept = [blob.read_bytes() for blob in blobs_in(root)]

    young = run(server.settings.database_url, "attachments", "sweep")
    after_young = [blob.read_bytes() for blob in blobs_in(root)]
    old = run(server.settings.database_url, "attachments", "sweep", "--min-age", "0")

    assert response.status_code == 503
    assert admin.count_tickets() == 0
    assert kept == [PNG]
    assert young.exit_code == 0
    assert after_young == [PNG]
    assert old.exit_code == 0
    assert blobs_in(root) == []


def test_sweep_removes_unattached_blobs_and_stale_temporary_files_only(
    api: httpx.Client,
    credentials: Credentials,
    blob_root: Path,
    database_url: str,
) -> None:
    post_form(api, credentials, file=("a.png", PNG, "image/png"))
    crashed = BlobStore(blob_root)  # as if its process died before the commit
    with crashed.start_upload() as upload:
        upload.write(b"never recorded")
        crashed.publish(upload)
    (blob_root / "tmp").mkdir(exist_ok=True)
    (blob_root / "tmp" / "interrupted-upload").write_bytes(b"half a file")

    young = run(database_url, "attachments", "sweep")
    after_young = len(blobs_in(blob_root)), len(temporary_files(blob_root))
    old = run(database_url, "attachments", "sweep", "--min-age", "0")

    assert young.exit_code == 0
    assert after_young == (2, 1)
    assert old.exit_code == 0, old.output
    assert "removed 2 files" in old.stderr
    assert "kept 1 attached files" in old.stderr
    assert [blob.read_bytes() for blob in blobs_in(blob_root)] == [PNG]
    assert temporary_files(blob_root) == []


# Malformed requests: 400, 413, 415


def test_request_part_that_is_not_json_answers_400_with_the_vendor_message(
    api: httpx.Client, credentials: Credentials, admin: AdminStore, blob_root: Path
) -> None:
    body = form_body(form_part(b'form-data; name="request"', b"{not json"))

    response = post_raw(api, credentials, body)

    answer = response.json()
    assert response.status_code == 400
    assert answer["msg"] == BAD_STRUCTURE
    assert "not valid JSON" in answer["errorMsg"]
    assert_nothing_stored(admin, blob_root)


def test_request_part_with_a_wrong_type_answers_400_naming_the_field(
    api: httpx.Client, credentials: Credentials, admin: AdminStore, blob_root: Path
) -> None:
    payload = {**VALID_REQUEST, "collaborators": [7]}

    response = post_form(api, credentials, payload=payload, file=("a.png", PNG, "x"))

    answer = response.json()
    assert response.status_code == 400
    assert answer["msg"] == BAD_STRUCTURE
    assert answer["errorMsg"].startswith("collaborators[0]: ")
    assert_nothing_stored(admin, blob_root)


def test_two_request_parts_answer_400(
    api: httpx.Client, credentials: Credentials, admin: AdminStore
) -> None:
    response = post_raw(api, credentials, form_body(request_part(), request_part()))

    assert response.status_code == 400
    assert admin.count_tickets() == 0


COMPLETE = form_body(request_part(), file_part(b"x" * 3000))
CLOSING = b"--" + BOUNDARY.encode() + b"--\r\n"


@pytest.mark.parametrize(
    "cut",
    [
        len(COMPLETE) - 3,  # the closing boundary's last hyphen
        len(COMPLETE) - len(CLOSING) + 4,  # inside the closing boundary
        len(COMPLETE) - len(CLOSING),  # just before the closing boundary
        len(COMPLETE) - 1000,  # inside the file
        len(request_part()) + 20,  # inside the file part's headers
        len(request_part()) // 2,  # inside the request part
    ],
    ids=[
        "last-hyphen",
        "inside-closing-boundary",
        "before-closing-boundary",
        "file",
        "file-headers",
        "request",
    ],
)
def test_truncated_body_answers_400_and_stores_nothing(
    api: httpx.Client,
    credentials: Credentials,
    admin: AdminStore,
    blob_root: Path,
    cut: int,
) -> None:
    response = post_raw(api, credentials, COMPLETE[:cut])

    assert response.status_code == 400
    assert "closing boundary" in response.json()["errorMsg"]
    assert_nothing_stored(admin, blob_root)


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data", COMPLETE),
        ("multipart/form-data; boundary=", COMPLETE),
        ("multipart/form-data; boundary=" + "b" * 71, COMPLETE),
        ("multipart/form-data; boundary=a{b}", COMPLETE),
        (FORM_TYPE, b"garbage, not a form"),
        (FORM_TYPE, b""),
        (FORM_TYPE, form_body(b"--" + BOUNDARY.encode() + b"\r\n\r\nno headers\r\n")),
        (
            FORM_TYPE,
            form_body(form_part(b"form-data", b"{}")),  # a part without a name
        ),
        (
            FORM_TYPE,
            form_body(form_part(b'attachment; name="request"', b"{}")),
        ),
        (
            FORM_TYPE,
            b"--"
            + BOUNDARY.encode()
            + b"\r\nContent-Type: text/plain\r\n\r\n{}\r\n--"
            + BOUNDARY.encode()
            + b"--\r\n",
        ),
    ],
    ids=[
        "no-boundary",
        "empty-boundary",
        "boundary-too-long",
        "boundary-with-invalid-characters",
        "garbage",
        "empty",
        "part-without-headers",
        "part-without-a-name",
        "not-form-data",
        "part-without-content-disposition",
    ],
)
def test_malformed_multipart_body_answers_400(
    api: httpx.Client,
    credentials: Credentials,
    admin: AdminStore,
    blob_root: Path,
    content_type: str,
    body: bytes,
) -> None:
    response = post_raw(api, credentials, body, content_type=content_type)

    assert response.status_code == 400
    assert response.json()["error"] is True
    assert response.json()["msg"] == response.json()["errorMsg"]
    assert_nothing_stored(admin, blob_root)


@pytest.mark.parametrize(
    "content_type",
    [None, "application/json", "application/x-www-form-urlencoded", "multipart/mixed"],
)
def test_other_content_types_answer_415(
    api: httpx.Client, credentials: Credentials, content_type: str | None
) -> None:
    headers = credentials.headers()
    if content_type is not None:
        headers["content-type"] = content_type

    response = api.post(URL, content=json.dumps(VALID_REQUEST), headers=headers)

    assert response.status_code == 415
    assert "multipart/form-data" in response.json()["errorMsg"]


def test_parts_other_than_the_file_are_held_to_the_body_limit(
    start_server: StartServer, credentials: Credentials, admin: AdminStore
) -> None:
    server = start_server(max_body_bytes=2000)
    filler = form_part(b'form-data; name="padding"', b"p" * 3000)

    too_much = post_raw(server, credentials, form_body(request_part(), filler))
    big_file = post_raw(
        server, credentials, form_body(request_part(), file_part(b"f" * 10_000))
    )

    assert too_much.status_code == 413
    assert "2000 bytes" in too_much.json()["errorMsg"]
    assert big_file.json()["success"] is True
    assert admin.count_tickets() == 1


def test_declared_length_over_both_limits_answers_413_before_reading(
    start_server: StartServer, credentials: Credentials, admin: AdminStore
) -> None:
    server = start_server(max_file_bytes=1000, max_body_bytes=500)
    head = (
        f"POST {URL} HTTP/1.1\r\nHost: test\r\nContent-Type: {FORM_TYPE}\r\n"
        "Content-Length: 1501\r\n"
        f"x-auth-apikey: {credentials.token}\r\nx-auth-scheme: api-token\r\n\r\n"
    )

    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
        conn.sendall(head.encode())  # and not one byte of the body
        answer = read_response(conn)

    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"1500 bytes" in answer
    assert admin.count_tickets() == 0


def test_missing_credentials_answer_401_and_read_nothing(
    api: httpx.Client, admin: AdminStore, blob_root: Path
) -> None:
    response = api.post(
        URL,
        content=form_body(request_part(), file_part(PNG)),
        headers={"content-type": FORM_TYPE},
    )

    assert response.status_code == 401
    assert "x-auth-apikey" in response.json()["errorMsg"]
    assert_nothing_stored(admin, blob_root)


# The command line


def run(database_url: str, *arguments: str) -> Result:
    return CliRunner().invoke(cli, [*arguments, "--database", database_url])


@pytest.fixture
def attached(
    api: httpx.Client, credentials: Credentials, admin: AdminStore
) -> dict[str, Any]:
    """The attachment row of a stored ticket with a PNG named ``Screen shot.png``."""
    post_form(api, credentials, file=("../Screen shot.png", PNG, "image/png"))
    [row] = stored_attachments(admin)
    return row


def test_cli_save_writes_the_identical_file_under_its_name(
    database_url: str,
    attached: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "out").mkdir()
    monkeypatch.chdir(tmp_path / "out")

    result = run(database_url, "attachments", "save", str(attached["id"]))

    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "Screen shot.png").read_bytes() == PNG
    assert result.stderr.strip() == "Screen shot.png"
    assert result.stdout == ""


def test_cli_save_refuses_to_overwrite_unless_forced(
    database_url: str, attached: dict[str, Any], tmp_path: Path
) -> None:
    target = tmp_path / "existing.png"
    target.write_bytes(b"keep me")
    arguments = ["attachments", "save", str(attached["id"]), "-o", str(target)]

    refused = run(database_url, *arguments)
    kept = target.read_bytes()
    forced = run(database_url, *arguments, "--force")

    assert refused.exit_code == 1
    assert "--force" in refused.stderr
    assert kept == b"keep me"
    assert forced.exit_code == 0
    assert target.read_bytes() == PNG


def test_cli_save_into_a_directory_uses_the_file_name(
    database_url: str, attached: dict[str, Any], tmp_path: Path
) -> None:
    result = run(
        database_url, "attachments", "save", str(attached["id"]), "-o", str(tmp_path)
    )

    assert result.exit_code == 0, result.output
    assert (tmp_path / "Screen shot.png").read_bytes() == PNG


def test_cli_save_of_an_unknown_attachment_fails(database_url: str) -> None:
    result = run(database_url, "attachments", "save", "999")

    assert result.exit_code == 1
    assert "no attachment has the id 999" in result.stderr


def test_cli_save_of_a_missing_blob_fails_and_writes_nothing(
    database_url: str, attached: dict[str, Any], blob_root: Path, tmp_path: Path
) -> None:
    BlobStore(blob_root).path_of(attached["sha256"]).unlink()

    result = run(
        database_url,
        "attachments",
        "save",
        str(attached["id"]),
        "-o",
        str(tmp_path / "x.png"),
    )

    assert result.exit_code == 1
    assert "missing from the blob store" in result.stderr
    assert not (tmp_path / "x.png").exists()


def test_cli_save_of_a_damaged_blob_fails_and_removes_the_copy(
    database_url: str, attached: dict[str, Any], blob_root: Path, tmp_path: Path
) -> None:
    BlobStore(blob_root).path_of(attached["sha256"]).write_bytes(b"bit rot")

    result = run(
        database_url,
        "attachments",
        "save",
        str(attached["id"]),
        "-o",
        str(tmp_path / "x.png"),
    )

    assert result.exit_code == 1
    assert "damaged" in result.stderr
    assert not (tmp_path / "x.png").exists()


def test_cli_reads_the_blob_dir_from_the_environment(
    start_server: StartServer,
    credentials: Credentials,
    admin: AdminStore,
    database_url: str,
    tmp_path: Path,
) -> None:
    server = start_server(blob_dir=str(tmp_path / "uploads"))
    post_raw(server, credentials, form_body(request_part(), file_part(b"moved")))
    [row] = stored_attachments(admin)
    target = tmp_path / "saved.txt"

    result = CliRunner().invoke(
        cli,
        ["attachments", "save", str(row["id"]), "-o", str(target)],
        env={
            "HELPLINE_DATABASE_URL": database_url,
            "HELPLINE_BLOB_DIR": str(tmp_path / "uploads"),
        },
    )

    assert result.exit_code == 0, result.output
    assert target.read_bytes() == b"moved"


def test_cli_list_shows_the_files_of_a_ticket(
    database_url: str, attached: dict[str, Any]
) -> None:
    table = run(database_url, "attachments", "list", str(attached["ticket_id"]))
    listed = run(
        database_url, "attachments", "list", str(attached["ticket_id"]), "--json"
    )

    assert table.exit_code == 0, table.output
    assert "Screen shot.png" in table.stdout
    assert attached["sha256"] in table.stdout
    [entry] = json.loads(listed.stdout)
    assert entry["id"] == attached["id"]
    assert entry["file_name"] == "Screen shot.png"
    assert entry["size_bytes"] == len(PNG)
    assert entry["content_type"] == "image/png"
    assert entry["sha256"] == hashlib.sha256(PNG).hexdigest()


def test_cli_tickets_show_names_the_attachment(
    database_url: str, attached: dict[str, Any]
) -> None:
    ticket_id = str(attached["ticket_id"])

    text = run(database_url, "tickets", "show", ticket_id)
    shown = run(database_url, "tickets", "show", ticket_id, "--json")

    assert f"#{attached['id']}  Screen shot.png" in text.stdout
    [entry] = json.loads(shown.stdout)["attachments"]
    assert entry["sha256"] == attached["sha256"]


def test_cli_list_of_an_unknown_ticket_fails(database_url: str) -> None:
    result = run(database_url, "attachments", "list", "999")

    assert result.exit_code == 1
    assert "no ticket has the id 999" in result.stderr


def test_blob_held_by_another_request_outlives_a_failed_one(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    held = []
    for _ in range(2):  # two requests with the same content, at the same time
        with store.start_upload() as upload:
            upload.write(b"same bytes")
            held.append(store.publish(upload))
    [sha256] = set(held)

    store.release(sha256, stored=False, is_attached=lambda _: False)
    kept_for_the_other = store.exists(sha256)
    store.release(sha256, stored=False, is_attached=lambda _: False)

    assert kept_for_the_other
    assert not store.exists(sha256)
    assert list((tmp_path / "tmp").iterdir()) == []


def test_blob_root_is_beside_the_database_unless_configured(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'help.db'}"

    assert blob_root_for(url, None) == tmp_path / "help.db.files"
    assert blob_root_for(url, str(tmp_path / "b")) == tmp_path / "b"


def test_blob_store_refuses_names_that_are_not_digests(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="SHA-256"):
        BlobStore(tmp_path).path_of("../../etc/passwd")


# Memory: uploads stream to disk


def resident_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    [line] = [line for line in status.splitlines() if line.startswith("VmRSS:")]
    return int(line.split()[1])


def streamed_upload(index: int, size: int) -> Iterator[bytes]:
    """A form whose file is ``size`` bytes, made one mebibyte at a time."""
    yield request_part({"subject": f"Upload {index}", "body": "Large file."})
    yield (
        b"--" + BOUNDARY.encode() + b"\r\n"
        b'Content-Disposition: form-data; name="file"; filename="big.bin"\r\n\r\n'
    )
    chunk = os.urandom(MIB)
    for _ in range(size // MIB):
        yield chunk
    yield b"\r\n--" + BOUNDARY.encode() + b"--\r\n"


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_four_concurrent_25_mib_uploads_keep_memory_flat(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path)
    try:
        token = bootstrap_token(server.stdout)
        headers = {
            "x-auth-apikey": token,
            "x-auth-scheme": "api-token",
            "content-type": FORM_TYPE,
        }

        def upload(index: int, size: int) -> httpx.Response:
            return httpx.post(
                server.url + URL,
                content=streamed_upload(index, size),
                headers=headers,
                timeout=60,
            )

        assert upload(0, MIB).json()["success"] is True  # warm every code path
        idle = resident_kib(server.process.pid)
        peak = idle
        done = threading.Event()

        def watch() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, resident_kib(server.process.pid))
                time.sleep(0.005)

        watcher = threading.Thread(target=watch)
        watcher.start()
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            answers = list(pool.map(upload, range(1, 5), [25 * MIB] * 4))
        done.set()
        watcher.join()
    finally:
        server.stop()

    growth_mib = (peak - idle) / 1024
    print(f"resident memory: idle {idle} KiB, peak {peak} KiB, +{growth_mib:.1f} MiB")
    assert [answer.json()["success"] for answer in answers] == [True] * 4
    assert len(blobs_in(tmp_path / "helpline.db.files")) == 5
    assert growth_mib < 40
