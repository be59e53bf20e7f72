"""``/api/help/ticketWithFile``: a ticket with one file, as multipart/form-data.

The ``request`` part carries the same JSON as ``/api/help/ticket`` and follows the
same rules; the optional ``file`` part is the attachment. The body is read as it
arrives: the request part is kept in memory (it is bounded by ``max_body_bytes``,
with every other non-file byte), while the file streams into a temporary file in
the blob store and its SHA-256 is computed on the way.

Once the ticket is valid, the file is made durable under its digest *before* the
ticket is stored, so a stored ticket never names a missing file. If the ticket is
then not stored by this request (a reused key, a replay, a storage failure), the
file is removed again unless a stored attachment refers to the same content.
"""

from __future__ import annotations

import asyncio
import dataclasses

from helpline.domain.attachments import (
    SNIFF_BYTES,
    Attachment,
    detect_content_type,
    sanitize_file_name,
)
from helpline.domain.failures import DomainFailure, FailureReason
from helpline.domain.tickets import NewTicket, prepare_ticket
from helpline.http import wire
from helpline.http.call import Call, Response, body_chunks
from helpline.http.errors import ApiError
from helpline.http.multipart import FormReader, PartInfo, PartSink, form_boundary
from helpline.http.outcomes import REPLAYED_HEADER
from helpline.http.tickets_api import store_ticket
from helpline.storage.blobs import (
    BlobStore,
    BlobUpload,
    blob_root_for,
    shared_blob_store,
)

REQUEST_PART = "request"
FILE_PART = "file"


async def create_ticket_with_file(call: Call) -> Response:
    """Open a ticket from a multipart body, storing its file if it has one.

    Raises ``ApiError`` (400, 413, 415) for a body that cannot be read as a form,
    ``MalformedBody`` for a request part that is not the ticket's JSON, and
    ``DomainFailure`` for a ticket or file that breaks a rule.
    """
    settings = call.settings
    boundary = form_boundary(call.request.headers.get("content-type"))
    _refuse_declared_length(call)
    blobs = shared_blob_store(blob_root_for(settings.database_url, settings.blob_dir))

    form = TicketForm(blobs, max_file_bytes=settings.max_file_bytes)
    try:
        await _read(call, FormReader(boundary, form.open_part), form)
        ticket, notes = _prepare(call, form)
        if form.upload is None:
            return await store_ticket(call, ticket, notes=notes)
        return await _store_with_file(call, blobs, form.upload, ticket, notes)
    finally:
        form.discard()


class TicketForm:
    """The parts of one ticketWithFile body, routed as their headers arrive.

    Raises ``DomainFailure`` (``Too many files``, ``File too large``) and
    ``ApiError`` (400 for a second request part) from the reader's ``feed``, so
    that reading stops at the first part that breaks a rule.
    """

    def __init__(self, blobs: BlobStore, *, max_file_bytes: int) -> None:
        self._blobs = blobs
        self._max_file_bytes = max_file_bytes
        self.request: bytearray | None = None
        self.upload: BlobUpload | None = None
        self.file_name: str | None = None
        self.ignored: dict[str, None] = {}  # names in order, each once

    @property
    def file_bytes(self) -> int:
        return 0 if self.upload is None else self.upload.size

    def open_part(self, part: PartInfo) -> PartSink:
        # A request sent as a file upload (curl -F request=@ticket.json) is still
        # the request: the name decides before the file name does.
        if part.name == REQUEST_PART:
            if self.request is not None:
                raise ApiError(400, "The body has two parts named request; send one.")
            self.request = bytearray()
            return _Buffered(self.request)
        if part.name == FILE_PART or part.file_name is not None:
            return self._open_file(part)
        self.ignored[part.name] = None
        return _Ignored()

    def _open_file(self, part: PartInfo) -> PartSink:
        if self.upload is not None:
            raise DomainFailure(
                FailureReason.TOO_MANY_FILES,
                "The body has more than one file part; this operation takes one "
                f"file, in the part named {FILE_PART}.",
            )
        self.upload = self._blobs.start_upload(head_bytes=SNIFF_BYTES)
        self.file_name = part.file_name
        return _LimitedFile(self.upload, limit=self._max_file_bytes)

    def attachment(self) -> Attachment | None:
        """The file's metadata, once the whole body has been read."""
        if self.upload is None:
            return None
        file_name = sanitize_file_name(self.file_name)
        return Attachment(
            file_name=file_name,
            size_bytes=self.upload.size,
            content_type=detect_content_type(self.upload.head, file_name),
            sha256=self.upload.sha256,
        )

    def discard(self) -> None:
        """Remove the temporary file, unless it was published."""
        if self.upload is not None:
            self.upload.discard()


@dataclasses.dataclass(slots=True)
class _Buffered:
    buffer: bytearray

    def write(self, data: memoryview) -> None:
        self.buffer += data

    def close(self) -> None:
        pass


class _Ignored:
    def write(self, data: memoryview) -> None:
        pass

    def close(self) -> None:
        pass


@dataclasses.dataclass(slots=True)
class _LimitedFile:
    upload: BlobUpload
    limit: int

    def write(self, data: memoryview) -> None:
        if self.upload.size + len(data) > self.limit:
            raise DomainFailure(
                FailureReason.FILE_TOO_LARGE,
                f"The file is larger than the limit of {self.limit} bytes; "
                "send a smaller file.",
            )
        self.upload.write(data)

    def close(self) -> None:
        pass


def _refuse_declared_length(call: Call) -> None:
    """413 before reading, for a body that says it is over both limits together."""
    limit = call.settings.max_file_bytes + call.settings.max_body_bytes
    declared = call.request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(
            413,
            f"The request body is larger than the limit of {limit} bytes: a file of "
            f"at most {call.settings.max_file_bytes} bytes and at most "
            f"{call.settings.max_body_bytes} bytes for everything else.",
        )


async def _read(call: Call, reader: FormReader, form: TicketForm) -> None:
    """Feed the whole body to ``reader``, holding everything but the file to
    ``max_body_bytes``; raises ``ApiError`` (413) past it."""
    limit = call.settings.max_body_bytes
    async for chunk in body_chunks(call.request):
        reader.feed(chunk)
        # Headers, boundaries and every non-file part count: they are what stays
        # in memory or could flood the warnings.
        if reader.bytes_read - form.file_bytes > limit:
            raise ApiError(
                413,
                f"The parts other than the file are larger than the limit of {limit} "
                "bytes; send a shorter subject or body.",
            )
    reader.finish()


def _prepare(call: Call, form: TicketForm) -> tuple[NewTicket, list[str]]:
    """The ticket the form asks for, with the warnings found before the domain."""
    if form.request is None:
        raise DomainFailure(
            FailureReason.MISSING_REQUEST_PART,
            f"The body has no part named {REQUEST_PART}; send the ticket's JSON, as "
            "for /api/help/ticket, in that part.",
        )
    submission, unknown = wire.decode(bytes(form.request), wire.CreateTicketRequest)
    notes = [
        *wire.field_warnings(unknown),
        *(f"{name[:100]}: unknown part, ignored" for name in form.ignored),
    ]
    ticket = prepare_ticket(
        submission,
        rules=call.settings.ticket_rules,
        submitter=call.submitter,
        now_ms=call.now_ms,
    )
    return dataclasses.replace(ticket, attachment=form.attachment()), notes


async def _store_with_file(
    call: Call,
    blobs: BlobStore,
    upload: BlobUpload,
    ticket: NewTicket,
    notes: list[str],
) -> Response:
    """Publish the file, store the ticket, and remove the file if it is not needed."""
    sha256 = await asyncio.to_thread(blobs.publish, upload)

    # Until the store answers, the write may still commit: keep the file. Only a
    # failure the store reported means that nothing was stored.
    stored = True
    try:
        response = await store_ticket(call, ticket, notes=notes)
        stored = REPLAYED_HEADER not in response.headers
        return response
    except Exception:
        stored = False
        raise
    finally:
        await asyncio.to_thread(
            blobs.release,
            sha256,
            stored=stored,
            is_attached=call.store.attachment_check(),
        )
