"""Tickets: the rules that turn a submission into a ticket worth storing.

``prepare_ticket`` is the one place that normalizes and validates what an integrator
sent. It either returns a ``NewTicket`` with the warnings that explain every change it
made, or raises ``DomainFailure`` with a reason from the catalogue; nothing is stored
in between.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from email_validator import EmailNotValidError, validate_email

from helpline.domain.attachments import Attachment
from helpline.domain.failures import DomainFailure, FailureReason
from helpline.domain.text import clean_text, reject_control_characters

if TYPE_CHECKING:
    from helpline.domain.rma import RmaDetails

MAX_EMAIL_LENGTH = 254
_LINE_BREAKS = re.compile(r"\s*[\r\n\t]+\s*")
_SERIAL_NUMBER = re.compile(r"[A-Z0-9]+(?:-[A-Z0-9]+)*")


class TicketStatus(enum.StrEnum):
    OPEN = "Open"
    PENDING = "Pending"
    SOLVED = "Solved"
    CLOSED = "Closed"

    @property
    def is_open(self) -> bool:
        """Open and Pending tickets still wait on someone; they are listed as open."""
        return self in (TicketStatus.OPEN, TicketStatus.PENDING)


class TicketKind(enum.StrEnum):
    TICKET = "ticket"
    RMA = "rma"


class TicketSubmission(Protocol):
    """What an integrator sent, decoded but not yet trusted."""

    @property
    def subject(self) -> str | None: ...
    @property
    def body(self) -> str | None: ...
    @property
    def collaborators(self) -> Sequence[str | None] | None: ...
    @property
    def serial_numbers(self) -> Sequence[str | None] | None: ...
    @property
    def product_type(self) -> str | None: ...
    @property
    def service_type(self) -> str | None: ...
    @property
    def console_access_granted(self) -> bool | None: ...


@dataclass(frozen=True, slots=True)
class TicketRules:
    """The limits and catalogues a deployment applies to every new ticket.

    An empty catalogue accepts any reasonable value: printable text on one line, at
    most ``max_catalogue_value_length`` characters.
    """

    max_subject_length: int = 200
    max_body_length: int = 50_000
    max_collaborators: int = 20
    max_serial_numbers: int = 50
    min_serial_number_length: int = 4
    max_serial_number_length: int = 40
    max_catalogue_value_length: int = 64
    product_types: tuple[str, ...] = ()
    service_types: tuple[str, ...] = ()
    console_access_hours: int = 72


@dataclass(frozen=True, slots=True)
class Submitter:
    """Who sends a request: an API key, its organization and its user."""

    organization_id: int
    api_key_id: int
    email: str


@dataclass(frozen=True, slots=True)
class NewTicket:
    """A validated, normalized ticket, ready to be stored for its submitter."""

    organization_id: int
    api_key_id: int
    submitter_email: str
    subject: str | None
    body: str | None
    collaborators: tuple[str, ...] | None
    serial_numbers: tuple[str, ...] | None
    product_type: str | None
    service_type: str | None
    console_access_granted: bool | None
    console_access_expires_at_ms: int | None
    created_at_ms: int
    warnings: tuple[str, ...] = ()
    kind: TicketKind = TicketKind.TICKET
    status: TicketStatus = TicketStatus.OPEN
    rma: RmaDetails | None = None
    attachment: Attachment | None = None

    def fingerprint(self) -> str:
        """A digest of what the caller asked for, to tell a retry from a new request.

        Two submissions that normalize to the same ticket share a fingerprint.
        """
        asked_for = [
            self.kind.value,
            None if self.rma is None else dataclasses.astuple(self.rma),
            None if self.attachment is None else self.attachment.sha256,
            self.subject,
            self.body,
            self.collaborators,
            self.serial_numbers,
            self.product_type,
            self.service_type,
            self.console_access_granted,
        ]
        encoded = json.dumps(asked_for, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(encoded.encode()).hexdigest()


def prepare_ticket(
    submission: TicketSubmission,
    *,
    rules: TicketRules,
    submitter: Submitter,
    now_ms: int,
) -> NewTicket:
    """Normalize and validate a submission into a ticket.

    Raises ``DomainFailure`` for the first rule the submission breaks.
    """
    warnings: list[str] = []

    subject = _clean_subject(submission.subject, rules=rules, warnings=warnings)
    body = clean_text("body", submission.body, warnings=warnings)
    if subject is None and body is None:
        raise DomainFailure(
            FailureReason.MISSING_CONTENT,
            "A ticket needs a subject or a body; both were missing or empty.",
        )
    if body is not None and len(body) > rules.max_body_length:
        raise DomainFailure(
            FailureReason.BODY_TOO_LONG,
            f"body has {len(body)} characters; the limit is {rules.max_body_length}.",
        )

    collaborators = _clean_collaborators(
        submission.collaborators, rules=rules, warnings=warnings
    )
    serial_numbers = _clean_serial_numbers(
        submission.serial_numbers, rules=rules, warnings=warnings
    )
    product_type = _clean_catalogue_value(
        "productType", submission.product_type, rules.product_types, rules, warnings
    )
    service_type = _clean_catalogue_value(
        "serviceType", submission.service_type, rules.service_types, rules, warnings
    )

    granted = submission.console_access_granted
    expires_at_ms = None
    if granted:
        expires_at_ms = now_ms + rules.console_access_hours * 3_600_000

    return NewTicket(
        organization_id=submitter.organization_id,
        api_key_id=submitter.api_key_id,
        submitter_email=submitter.email,
        subject=subject,
        body=body,
        collaborators=collaborators,
        serial_numbers=serial_numbers,
        product_type=product_type,
        service_type=service_type,
        console_access_granted=granted,
        console_access_expires_at_ms=expires_at_ms,
        created_at_ms=now_ms,
        warnings=tuple(warnings),
    )


def _clean_subject(
    value: str | None, *, rules: TicketRules, warnings: list[str]
) -> str | None:
    if value is not None:
        # Before any whitespace folding: str.strip() would swallow some controls.
        reject_control_characters("subject", value)
    if value is not None and _LINE_BREAKS.search(value.strip()):
        # A subject becomes a mail subject line, where a line break is an injection.
        value = _LINE_BREAKS.sub(" ", value.strip())
        warnings.append("subject: line breaks and tabs were replaced by spaces")
    subject = clean_text("subject", value, warnings=warnings)
    if subject is not None and len(subject) > rules.max_subject_length:
        raise DomainFailure(
            FailureReason.SUBJECT_TOO_LONG,
            f"subject has {len(subject)} characters; "
            f"the limit is {rules.max_subject_length}.",
        )
    return subject


def _drop_nulls(
    path: str, values: Sequence[str | None], warnings: list[str]
) -> list[tuple[int, str]]:
    """Pair each non-null entry with its index in the request, for messages."""
    kept = [(index, value) for index, value in enumerate(values) if value is not None]
    if len(kept) != len(values):
        warnings.append(f"{path}: {len(values) - len(kept)} null entries were dropped")
    return kept


def _clean_entries(
    path: str,
    values: Sequence[str | None] | None,
    *,
    canonical: Callable[[str, str], str],
    identity: Callable[[str], str],
    warnings: list[str],
) -> tuple[str, ...] | None:
    """Canonicalize each entry of a list, dropping nulls and duplicates.

    ``canonical(raw, entry_path)`` spells an entry as stored (raising
    ``DomainFailure`` for an invalid one); entries with equal ``identity`` are
    duplicates, of which the first is kept.
    """
    if values is None:
        return None

    kept: dict[str, str] = {}
    for index, raw in _drop_nulls(path, values, warnings):
        entry_path = f"{path}[{index}]"
        entry = canonical(raw, entry_path)
        if entry != raw:
            warnings.append(f"{entry_path}: normalized to {entry}")
        key = identity(entry)
        if key in kept:
            warnings.append(f"{entry_path}: duplicate of {kept[key]}, dropped")
            continue
        kept[key] = entry
    return tuple(kept.values())


def _at_most(
    path: str,
    entries: tuple[str, ...] | None,
    *,
    limit: int,
    reason: FailureReason,
) -> tuple[str, ...] | None:
    if entries is not None and len(entries) > limit:
        raise DomainFailure(
            reason,
            f"{path} has {len(entries)} distinct entries; the limit is {limit}.",
        )
    return entries


def _clean_collaborators(
    values: Sequence[str | None] | None, *, rules: TicketRules, warnings: list[str]
) -> tuple[str, ...] | None:
    addresses = _clean_entries(
        "collaborators",
        values,
        canonical=lambda raw, path: normalize_email(raw, path=path),
        identity=str.casefold,
        warnings=warnings,
    )
    return _at_most(
        "collaborators",
        addresses,
        limit=rules.max_collaborators,
        reason=FailureReason.TOO_MANY_COLLABORATORS,
    )


def normalize_email(raw: str, *, path: str) -> str:
    """The canonical spelling of an email address, checked by syntax only.

    Raises ``DomainFailure`` with ``Invalid email address`` naming ``path``.
    """
    candidate = raw.strip()
    normalized, problem = _email_verdict(candidate)
    if normalized is None:
        raise DomainFailure(
            FailureReason.INVALID_EMAIL,
            f"{path} ({candidate[:80]!r}) is not valid: {problem}",
        )
    return normalized


# Integrators send the same few addresses again and again, and checking one takes
# tens of microseconds; remembering recent verdicts makes the repeat free.
@functools.lru_cache(maxsize=4096)
def _email_verdict(candidate: str) -> tuple[str | None, str | None]:
    """``(normalized, None)`` for a valid address, ``(None, problem)`` otherwise."""
    if len(candidate) > MAX_EMAIL_LENGTH:
        return None, f"longer than {MAX_EMAIL_LENGTH} characters."
    try:
        checked = validate_email(candidate, check_deliverability=False, strict=True)
    except EmailNotValidError as error:
        return None, str(error)
    return str(checked.normalized), None


def _clean_serial_numbers(
    values: Sequence[str | None] | None, *, rules: TicketRules, warnings: list[str]
) -> tuple[str, ...] | None:
    serials = _clean_entries(
        "serialNumbers",
        values,
        canonical=lambda raw, path: normalize_serial_number(
            raw, path=path, rules=rules
        ),
        identity=str,
        warnings=warnings,
    )
    return _at_most(
        "serialNumbers",
        serials,
        limit=rules.max_serial_numbers,
        reason=FailureReason.TOO_MANY_SERIAL_NUMBERS,
    )


def normalize_serial_number(raw: str, *, path: str, rules: TicketRules) -> str:
    """A device serial number in capitals; raises ``Invalid serial number``."""
    serial = raw.strip()
    # Checked before upper-casing, which turns some non-ASCII letters into ASCII.
    if not serial.isascii() or not _is_plausible_serial(serial.upper(), rules):
        raise DomainFailure(
            FailureReason.INVALID_SERIAL_NUMBER,
            f"{path} ({raw[:80]!r}) is not a device serial number: use "
            f"{rules.min_serial_number_length}-{rules.max_serial_number_length} "
            "letters and digits, in groups joined by single hyphens, with at "
            "least one digit.",
        )
    return serial.upper()


def _is_plausible_serial(serial: str, rules: TicketRules) -> bool:
    length_ok = (
        rules.min_serial_number_length <= len(serial) <= rules.max_serial_number_length
    )
    return (
        length_ok
        and _SERIAL_NUMBER.fullmatch(serial) is not None
        and any(character.isdigit() for character in serial)
    )


_CATALOGUE_FAILURES = {
    "productType": (
        FailureReason.INVALID_PRODUCT_TYPE,
        FailureReason.UNKNOWN_PRODUCT_TYPE,
    ),
    "serviceType": (
        FailureReason.INVALID_SERVICE_TYPE,
        FailureReason.UNKNOWN_SERVICE_TYPE,
    ),
}


def _clean_catalogue_value(
    path: str,
    value: str | None,
    catalogue: tuple[str, ...],
    rules: TicketRules,
    warnings: list[str],
) -> str | None:
    cleaned = clean_text(path, value, warnings=warnings)
    if cleaned is None:
        return None
    invalid, unknown = _CATALOGUE_FAILURES[path]

    if catalogue:
        by_folded = {entry.casefold(): entry for entry in catalogue}
        canonical = by_folded.get(cleaned.casefold())
        if canonical is None:
            raise DomainFailure(
                unknown,
                f"{path} {cleaned[:80]!r} is not one of: {', '.join(catalogue)}.",
            )
        if canonical != cleaned:
            warnings.append(f"{path}: normalized to {canonical}")
        return canonical

    too_long = len(cleaned) > rules.max_catalogue_value_length
    if too_long or not cleaned.isprintable():
        raise DomainFailure(
            invalid,
            f"{path} must be at most {rules.max_catalogue_value_length} printable "
            "characters on one line.",
        )
    return cleaned
