"""Return merchandise authorizations: a ticket that sends a device back for repair."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import phonenumbers

from helpline.domain.failures import DomainFailure, FailureReason
from helpline.domain.text import clean_text, reject_control_characters
from helpline.domain.tickets import (
    NewTicket,
    Submitter,
    TicketKind,
    TicketRules,
    normalize_serial_number,
)

MAX_RMA_FIELD_LENGTH = 200
_ADDRESS = "returnShippingAddress"
_REQUIRED_ADDRESS_FIELDS = (
    "returnAddressStreet",
    "returnAddressCity",
    "returnAddressPostalCode",
    "returnAddressCountry",
)


class AddressSubmission(Protocol):
    @property
    def return_address_street(self) -> str | None: ...
    @property
    def return_address_city(self) -> str | None: ...
    @property
    def return_address_state(self) -> str | None: ...
    @property
    def return_address_postal_code(self) -> str | None: ...
    @property
    def return_address_country(self) -> str | None: ...


class RmaSubmission(Protocol):
    """What an integrator sent to ``/api/help/rma``, decoded but not yet trusted."""

    @property
    def contact_name(self) -> str | None: ...
    @property
    def contact_phone_number(self) -> str | None: ...
    @property
    def device_name(self) -> str | None: ...
    @property
    def problem(self) -> str | None: ...
    @property
    def serial_number(self) -> str | None: ...
    @property
    def return_shipping_address(self) -> AddressSubmission | None: ...


@dataclass(frozen=True, slots=True)
class RmaDetails:
    contact_name: str | None
    contact_phone_number: str | None
    device_name: str | None
    problem: str
    serial_number: str
    street: str
    city: str
    state: str | None
    postal_code: str
    country: str


def prepare_rma(
    submission: RmaSubmission,
    *,
    rules: TicketRules,
    submitter: Submitter,
    now_ms: int,
) -> NewTicket:
    """Validate an RMA request into a ticket of kind RMA carrying its details.

    Raises ``DomainFailure`` for the first rule the request breaks.
    """
    warnings: list[str] = []

    serial = _serial_number(submission.serial_number, rules=rules)
    if serial != submission.serial_number:
        warnings.append(f"serialNumber: normalized to {serial}")
    problem = clean_text("problem", submission.problem, warnings=warnings)
    if problem is None:
        raise DomainFailure(
            FailureReason.MISSING_PROBLEM,
            "problem is required: describe what is wrong with the device.",
        )
    if len(problem) > rules.max_body_length:
        raise DomainFailure(
            FailureReason.BODY_TOO_LONG,
            f"problem has {len(problem)} characters; "
            f"the limit is {rules.max_body_length}.",
        )
    phone = _phone_number(submission.contact_phone_number, warnings=warnings)
    contact_name = _short_text(
        "contactName",
        submission.contact_name,
        FailureReason.INVALID_CONTACT_NAME,
        warnings,
    )
    device_name = _short_text(
        "deviceName",
        submission.device_name,
        FailureReason.INVALID_DEVICE_NAME,
        warnings,
    )
    street, city, state, postal_code, country = _address(
        submission.return_shipping_address, warnings=warnings
    )

    details = RmaDetails(
        contact_name=contact_name,
        contact_phone_number=phone,
        device_name=device_name,
        problem=problem,
        serial_number=serial,
        street=street,
        city=city,
        state=state,
        postal_code=postal_code,
        country=country,
    )
    return NewTicket(
        organization_id=submitter.organization_id,
        api_key_id=submitter.api_key_id,
        submitter_email=submitter.email,
        subject=f"RMA: {device_name or serial}",
        body=problem,
        collaborators=None,
        serial_numbers=(serial,),
        product_type=None,
        service_type=None,
        console_access_granted=None,
        console_access_expires_at_ms=None,
        created_at_ms=now_ms,
        warnings=tuple(warnings),
        kind=TicketKind.RMA,
        rma=details,
    )


def _serial_number(raw: str | None, *, rules: TicketRules) -> str:
    if raw is None or not raw.strip():
        raise DomainFailure(
            FailureReason.INVALID_SERIAL_NUMBER,
            "serialNumber is required: the serial number of the device to return.",
        )
    return normalize_serial_number(raw, path="serialNumber", rules=rules)


def _phone_number(raw: str | None, *, warnings: list[str]) -> str | None:
    """The number in E.164 form; it must be international (start with +)."""
    if raw is None or not raw.strip():
        return None
    invalid = DomainFailure(
        FailureReason.INVALID_PHONE_NUMBER,
        f"contactPhoneNumber ({raw[:40]!r}) is not a phone number: give it in "
        "international form, starting with + and the country code.",
    )
    try:
        parsed = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        raise invalid from None
    if not phonenumbers.is_possible_number(parsed):
        raise invalid
    normalized = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if normalized != raw:
        warnings.append(f"contactPhoneNumber: normalized to {normalized}")
    return str(normalized)


def _short_text(
    path: str, raw: str | None, reason: FailureReason, warnings: list[str]
) -> str | None:
    if raw is not None:
        reject_control_characters(path, raw, reason=reason, one_line=True)
    value = clean_text(path, raw, warnings=warnings)
    if value is not None and len(value) > MAX_RMA_FIELD_LENGTH:
        raise DomainFailure(
            reason,
            f"{path} has {len(value)} characters; the limit is {MAX_RMA_FIELD_LENGTH}.",
        )
    return value


def _address(
    address: AddressSubmission | None, *, warnings: list[str]
) -> tuple[str, str, str | None, str, str]:
    """Street, city, state, postal code and country; all but the state required."""
    reason = FailureReason.INVALID_SHIPPING_ADDRESS
    if address is None:
        raise DomainFailure(
            reason,
            f"{_ADDRESS} is required, with at least returnAddressStreet, "
            "returnAddressCity, returnAddressPostalCode and returnAddressCountry.",
        )
    fields = {
        "returnAddressStreet": address.return_address_street,
        "returnAddressCity": address.return_address_city,
        "returnAddressState": address.return_address_state,
        "returnAddressPostalCode": address.return_address_postal_code,
        "returnAddressCountry": address.return_address_country,
    }
    cleaned = {
        name: _short_text(f"{_ADDRESS}.{name}", value, reason, warnings)
        for name, value in fields.items()
    }
    present = {name: value for name, value in cleaned.items() if value is not None}
    missing = [
        f"{_ADDRESS}.{name}" for name in _REQUIRED_ADDRESS_FIELDS if name not in present
    ]
    if missing:
        raise DomainFailure(reason, f"{', '.join(missing)} missing or blank.")
    return (
        present["returnAddressStreet"],
        present["returnAddressCity"],
        present.get("returnAddressState"),
        present["returnAddressPostalCode"],
        present["returnAddressCountry"],
    )
