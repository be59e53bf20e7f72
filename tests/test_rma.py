"""POST /api/help/rma over real HTTP, and the RMA details the operator sees.

Black-box acceptance tests written from the planned interface of issue 3.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from helpline.cli import cli
from helpline.domain.keys import Permission
from helpline.storage.admin import AdminStore

from .conftest import VALID_REQUEST, Credentials, MakeKey, StartServer

RMA = "/api/help/rma"
ENVELOPE_FIELDS = {
    "success",
    "ticketId",
    "failureReason",
    "error",
    "errorMsg",
    "warningMsg",
}
BAD_STRUCTURE = "JSON doesn't match expected object structure"
ADDRESS = "returnShippingAddress"
VALID_RMA: dict[str, Any] = {
    "contactName": "John Doe",
    "contactPhoneNumber": "+15551234567",
    "deviceName": "Rhombus Camera Pro",
    "problem": "Camera not recording properly",
    "serialNumber": "RCAM-1234-ABCD",
    ADDRESS: {
        "returnAddressStreet": "123 Main Street",
        "returnAddressCity": "San Francisco",
        "returnAddressState": "CA",
        "returnAddressPostalCode": "94105",
        "returnAddressCountry": "United States",
    },
}
STORED_DETAILS = {
    "contact_name": "John Doe",
    "contact_phone_number": "+15551234567",
    "device_name": "Rhombus Camera Pro",
    "problem": "Camera not recording properly",
    "serial_number": "RCAM-1234-ABCD",
    "street": "123 Main Street",
    "city": "San Francisco",
    "state": "CA",
    "postal_code": "94105",
    "country": "United States",
}
MISSING = object()


def rma_request(**changes: Any) -> dict[str, Any]:
    """The valid request with some fields changed; ``address__x`` changes the address.

    A value of ``MISSING`` removes the field.
    """
    request = copy.deepcopy(VALID_RMA)
    for name, value in changes.items():
        target, field = (
            (request[ADDRESS], name.removeprefix("address__"))
            if name.startswith("address__")
            else (request, name)
        )
        if value is MISSING:
            target.pop(field, None)
        else:
            target[field] = value
    return request


def describe(value: object) -> str | None:
    """A readable test id for a dict of changes; other values keep pytest's id."""
    if not isinstance(value, dict):
        return None
    parts = [
        f"{name.removeprefix('address__')}="
        + ("missing" if change is MISSING else ascii(change)[:24])
        for name, change in value.items()
    ]
    return ",".join(parts)


def post_rma(
    api: httpx.Client, credentials: Credentials, payload: Any, **headers: str
) -> httpx.Response:
    return api.post(RMA, json=payload, headers=credentials.headers(**headers))


def envelope(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    assert set(body) >= ENVELOPE_FIELDS
    return body


def run(database_url: str, *arguments: str) -> Result:
    return CliRunner().invoke(cli, [*arguments, "--database", database_url])


def rma_details(database_url: str, ticket_id: int) -> dict[str, Any]:
    result = run(database_url, "tickets", "show", str(ticket_id), "--json")
    assert result.exit_code == 0, result.output
    details: dict[str, Any] = json.loads(result.stdout)["rma"]
    return details


# Success


def test_rma_opens_a_ticket_of_kind_rma(
    api: httpx.Client, credentials: Credentials, admin: AdminStore
) -> None:
    response = post_rma(api, credentials, VALID_RMA)

    body = envelope(response)
    assert response.status_code == 200
    assert (body["success"], body["error"]) == (True, False)
    assert (body["failureReason"], body["errorMsg"]) == (None, None)
    assert 0 < body["ticketId"] < 2**31
    ticket = admin.get_ticket(body["ticketId"])
    assert (ticket.kind, ticket.status) == ("rma", "Open")
    assert ticket.subject == "RMA: Rhombus Camera Pro"
    assert ticket.body == "Camera not recording properly"
    assert ticket.serial_numbers == ["RCAM-1234-ABCD"]
    assert (ticket.organization, ticket.submitter_email) == (
        credentials.organization,
        credentials.user_email,
    )
    assert [event.kind for event in ticket.events] == ["created"]


def test_rma_already_normalized_has_no_warning(
    api: httpx.Client, credentials: Credentials
) -> None:
    body = post_rma(api, credentials, VALID_RMA).json()

    assert body["success"] is True
    assert body["warningMsg"] is None


def test_rma_details_are_shown_by_tickets_show_json(
    api: httpx.Client, credentials: Credentials, database_url: str
) -> None:
    ticket_id = post_rma(api, credentials, VALID_RMA).json()["ticketId"]

    assert rma_details(database_url, ticket_id) == STORED_DETAILS


def test_rma_text_view_has_an_rma_section(
    api: httpx.Client, credentials: Credentials, database_url: str
) -> None:
    ticket_id = post_rma(api, credentials, VALID_RMA).json()["ticketId"]

    result = run(database_url, "tickets", "show", str(ticket_id))

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert any(line.strip().startswith("RMA") for line in lines)
    for shown in ["John Doe", "+15551234567", "San Francisco", "94105"]:
        assert shown in result.stdout


@pytest.mark.parametrize("device_name", [MISSING, None])
def test_rma_subject_falls_back_to_the_serial_number(
    api: httpx.Client,
    credentials: Credentials,
    admin: AdminStore,
    device_name: object,
) -> None:
    request = rma_request(deviceName=device_name, serialNumber="RCAM-9999-ZZZZ")

    ticket_id = post_rma(api, credentials, request).json()["ticketId"]

    assert admin.get_ticket(ticket_id).subject == "RMA: RCAM-9999-ZZZZ"


def test_rma_subject_holds_a_device_name_of_200_characters(
    api: httpx.Client, credentials: Credentials, admin: AdminStore
) -> None:
    request = rma_request(deviceName="D" * 200)

    ticket_id = post_rma(api, credentials, request).json()["ticketId"]

    assert admin.get_ticket(ticket_id).subject == "RMA: " + "D" * 200


def test_rma_serial_number_is_upper_cased(
    api: httpx.Client, credentials: Credentials, admin: AdminStore, database_url: str
) -> None:
    request = rma_request(deviceName=MISSING, serialNumber="rcam-1234-abcd")

    ticket_id = post_rma(api, credentials, request).json()["ticketId"]

    ticket = admin.get_ticket(ticket_id)
    assert ticket.serial_numbers == ["RCAM-1234-ABCD"]
    assert ticket.subject == "RMA: RCAM-1234-ABCD"
    assert rma_details(database_url, ticket_id)["serial_number"] == "RCAM-1234-ABCD"


def test_rma_names_are_trimmed(
    api: httpx.Client, credentials: Credentials, admin: AdminStore, database_url: str
) -> None:
    request = rma_request(contactName="  John Doe ", deviceName=" Rhombus Camera Pro  ")

    ticket_id = post_rma(api, credentials, request).json()["ticketId"]

    details = rma_details(database_url, ticket_id)
    assert details["contact_name"] == "John Doe"
    assert details["device_name"] == "Rhombus Camera Pro"
    assert admin.get_ticket(ticket_id).subject == "RMA: Rhombus Camera Pro"


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("+1-555-123-4567", "+15551234567"),
        ("+1 (555) 123-4567", "+15551234567"),
        ("+44 20 7946 0958", "+442079460958"),
    ],
)
def test_rma_phone_number_is_stored_as_e164_with_a_warning(
    api: httpx.Client,
    credentials: Credentials,
    database_url: str,
    given: str,
    stored: str,
) -> None:
    body = post_rma(api, credentials, rma_request(contactPhoneNumber=given)).json()

    assert body["success"] is True
    assert "contactPhoneNumber" in body["warningMsg"]
    details = rma_details(database_url, body["ticketId"])
    assert details["contact_phone_number"] == stored


@pytest.mark.parametrize("phone", [MISSING, None])
def test_rma_phone_number_is_optional(
    api: httpx.Client, credentials: Credentials, database_url: str, phone: object
) -> None:
    body = post_rma(api, credentials, rma_request(contactPhoneNumber=phone)).json()

    assert body["success"] is True
    assert rma_details(database_url, body["ticketId"])["contact_phone_number"] is None


@pytest.mark.parametrize(
    "changes",
    [
        {"address__returnAddressState": MISSING},
        {"address__returnAddressState": None},
        {"contactName": MISSING, "deviceName": None},
    ],
)
def test_rma_optional_fields_may_be_left_out(
    api: httpx.Client,
    credentials: Credentials,
    database_url: str,
    changes: dict[str, Any],
) -> None:
    body = post_rma(api, credentials, rma_request(**changes)).json()

    assert body["success"] is True, body
    details = rma_details(database_url, body["ticketId"])
    for name, stored in [
        ("address__returnAddressState", "state"),
        ("contactName", "contact_name"),
        ("deviceName", "device_name"),
    ]:
        if name in changes:
            assert details[stored] is None


@pytest.mark.parametrize(
    "changes",
    [
        {"contactName": "n" * 200},
        {"deviceName": "d" * 200},
        {"address__returnAddressStreet": "s" * 200},
        {"address__returnAddressCity": "c" * 200},
        {"address__returnAddressState": "t" * 200},
        {"address__returnAddressPostalCode": "p" * 200},
        {"address__returnAddressCountry": "k" * 200},
        {"problem": "x" * 50_000},
        {"serialNumber": "A1B2"},
        {"serialNumber": "A1" + "B" * 38},
        {"serialNumber": "RCAM-1234-ABCD-5678"},
    ],
)
def test_rma_values_at_their_limits_are_accepted(
    api: httpx.Client, credentials: Credentials, changes: dict[str, Any]
) -> None:
    body = post_rma(api, credentials, rma_request(**changes)).json()

    assert (body["success"], body["error"]) == (True, False), body


def test_rma_unknown_fields_are_ignored_and_named_in_warning(
    api: httpx.Client, credentials: Credentials
) -> None:
    body = post_rma(api, credentials, {**VALID_RMA, "priority": 1}).json()

    assert body["success"] is True
    assert "priority: unknown field, ignored" in body["warningMsg"]


def test_rma_unknown_address_fields_are_ignored_and_named_in_warning(
    api: httpx.Client, credentials: Credentials, database_url: str
) -> None:
    request = rma_request(address__apartment="4B")

    body = post_rma(api, credentials, request).json()

    assert body["success"] is True
    assert "returnShippingAddress.apartment" in body["warningMsg"]
    assert rma_details(database_url, body["ticketId"])["street"] == "123 Main Street"


# Failures: nothing stored


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"serialNumber": MISSING}, "Invalid serial number"),
        ({"serialNumber": None}, "Invalid serial number"),
        ({"serialNumber": ""}, "Invalid serial number"),
        ({"serialNumber": "   "}, "Invalid serial number"),
        ({"serialNumber": "AB1"}, "Invalid serial number"),
        ({"serialNumber": "ABCD-EFGH"}, "Invalid serial number"),
        ({"serialNumber": "RCAM--1234"}, "Invalid serial number"),
        ({"serialNumber": "-RCAM1234"}, "Invalid serial number"),
        ({"serialNumber": "RCAM1234-"}, "Invalid serial number"),
        ({"serialNumber": "RCAM 1234"}, "Invalid serial number"),
        ({"serialNumber": "RCAM_1234"}, "Invalid serial number"),
        ({"serialNumber": "RCÄM-1234"}, "Invalid serial number"),
        ({"serialNumber": "A1" + "B" * 39}, "Invalid serial number"),
        ({"problem": MISSING}, "Missing problem"),
        ({"problem": None}, "Missing problem"),
        ({"problem": ""}, "Missing problem"),
        ({"problem": " \n\t "}, "Missing problem"),
        ({"problem": "x" * 50_001}, "Body too long"),
        ({"contactPhoneNumber": "555-123-4567"}, "Invalid phone number"),
        ({"contactPhoneNumber": "15551234567"}, "Invalid phone number"),
        ({"contactPhoneNumber": "+1"}, "Invalid phone number"),
        ({"contactPhoneNumber": "+1 555"}, "Invalid phone number"),
        ({"contactPhoneNumber": "+1 555 123 4567 8901 2345"}, "Invalid phone number"),
        ({"contactPhoneNumber": "call me maybe"}, "Invalid phone number"),
        ({ADDRESS: MISSING}, "Invalid shipping address"),
        ({ADDRESS: None}, "Invalid shipping address"),
        ({ADDRESS: {}}, "Invalid shipping address"),
        ({"address__returnAddressStreet": MISSING}, "Invalid shipping address"),
        ({"address__returnAddressCity": ""}, "Invalid shipping address"),
        ({"address__returnAddressPostalCode": "   "}, "Invalid shipping address"),
        ({"address__returnAddressCountry": None}, "Invalid shipping address"),
        ({"address__returnAddressStreet": "s" * 201}, "Invalid shipping address"),
        ({"address__returnAddressState": "t" * 201}, "Invalid shipping address"),
        ({"contactName": "n" * 201}, "Invalid contact name"),
        ({"contactName": "John\x07Doe"}, "Invalid contact name"),
        ({"contactName": "John\nDoe"}, "Invalid contact name"),
        ({"contactName": "John\tDoe"}, "Invalid contact name"),
        ({"contactName": "John\x85Doe"}, "Invalid contact name"),
        ({"deviceName": "d" * 201}, "Invalid device name"),
        ({"deviceName": "Camera\x1bPro"}, "Invalid device name"),
        ({"deviceName": "Camera\r\nPro"}, "Invalid device name"),
        ({"deviceName": "Camera\x9bPro"}, "Invalid device name"),
    ],
    ids=describe,
)
def test_rma_failure_answers_200_and_stores_nothing(
    api: httpx.Client,
    credentials: Credentials,
    admin: AdminStore,
    changes: dict[str, Any],
    reason: str,
) -> None:
    response = post_rma(api, credentials, rma_request(**changes))

    body = envelope(response)
    assert response.status_code == 200
    assert (body["success"], body["error"], body["ticketId"]) == (False, True, None)
    assert body["failureReason"] == reason
    assert isinstance(body["errorMsg"], str)
    assert body["errorMsg"]
    assert admin.count_tickets() == 0


@pytest.mark.parametrize(
    ("changes", "named", "not_named"),
    [
        (
            {"address__returnAddressCity": MISSING},
            ["returnShippingAddress.returnAddressCity"],
            ["returnAddressStreet", "returnAddressPostalCode", "returnAddressCountry"],
        ),
        (
            {"address__returnAddressStreet": " ", "address__returnAddressCountry": ""},
            [
                "returnShippingAddress.returnAddressStreet",
                "returnShippingAddress.returnAddressCountry",
            ],
            ["returnAddressCity", "returnAddressPostalCode"],
        ),
        (
            {ADDRESS: {"returnAddressState": "CA"}},
            [
                "returnShippingAddress.returnAddressStreet",
                "returnShippingAddress.returnAddressCity",
                "returnShippingAddress.returnAddressPostalCode",
                "returnShippingAddress.returnAddressCountry",
            ],
            ["returnAddressState"],
        ),
        ({ADDRESS: MISSING}, ["returnShippingAddress"], []),
    ],
)
def test_rma_address_error_names_each_missing_field(
    api: httpx.Client,
    credentials: Credentials,
    changes: dict[str, Any],
    named: list[str],
    not_named: list[str],
) -> None:
    body = post_rma(api, credentials, rma_request(**changes)).json()

    assert body["failureReason"] == "Invalid shipping address"
    for field in named:
        assert field in body["errorMsg"]
    for field in not_named:
        assert field not in body["errorMsg"]


@pytest.mark.parametrize(
    ("changes", "named_path"),
    [
        ({ADDRESS: "123 Main Street, San Francisco"}, ADDRESS),
        ({ADDRESS: ["123 Main Street"]}, ADDRESS),
        ({"serialNumber": 12345}, "serialNumber"),
        ({"contactName": ["John"]}, "contactName"),
        ({"problem": True}, "problem"),
        ({"contactPhoneNumber": 15551234567}, "contactPhoneNumber"),
        (
            {"address__returnAddressCity": 5},
            "returnShippingAddress.returnAddressCity",
        ),
    ],
)
def test_rma_field_of_the_wrong_type_answers_400(
    api: httpx.Client,
    credentials: Credentials,
    admin: AdminStore,
    changes: dict[str, Any],
    named_path: str,
) -> None:
    response = post_rma(api, credentials, rma_request(**changes))

    body = envelope(response)
    assert response.status_code == 400
    assert (body["msg"], body["error"]) == (BAD_STRUCTURE, True)
    assert body["errorMsg"].startswith(f"{named_path}:")
    assert admin.count_tickets() == 0


@pytest.mark.parametrize("content", [b"[]", b"null", b"{not json"])
def test_rma_body_that_is_not_an_object_answers_400(
    api: httpx.Client, credentials: Credentials, content: bytes
) -> None:
    response = api.post(
        RMA,
        content=content,
        headers=credentials.headers(**{"content-type": "application/json"}),
    )

    body = envelope(response)
    assert response.status_code == 400
    assert body["msg"] == BAD_STRUCTURE


def test_rma_with_a_wrong_content_type_answers_415(
    api: httpx.Client, credentials: Credentials, admin: AdminStore
) -> None:
    headers = credentials.headers(**{"content-type": "text/plain"})

    response = api.post(RMA, content=json.dumps(VALID_RMA), headers=headers)

    assert response.status_code == 415
    assert "application/json" in envelope(response)["errorMsg"]
    assert admin.count_tickets() == 0


def test_rma_with_a_wrong_method_answers_405_with_allow(
    api: httpx.Client, credentials: Credentials
) -> None:
    response = api.get(RMA, headers=credentials.headers())

    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    envelope(response)


def test_rma_with_an_oversized_body_answers_413(
    start_server: StartServer, credentials: Credentials, admin: AdminStore
) -> None:
    server = start_server(max_body_bytes=1_000)

    response = httpx.post(
        server.url + RMA,
        json=rma_request(problem="x" * 2_000),
        headers=credentials.headers(),
    )

    assert response.status_code == 413
    envelope(response)
    assert admin.count_tickets() == 0


# Authentication and permissions


def test_rma_without_credentials_answers_401(
    api: httpx.Client, admin: AdminStore
) -> None:
    response = api.post(RMA, json=VALID_RMA)

    body = envelope(response)
    assert response.status_code == 401
    assert "x-auth-apikey" in body["errorMsg"]
    assert admin.count_tickets() == 0


def test_rma_with_a_read_only_key_answers_403(
    api: httpx.Client, make_key: MakeKey, admin: AdminStore
) -> None:
    reader = make_key(permissions=frozenset({Permission("tickets:read")}))

    response = post_rma(api, reader, VALID_RMA)

    body = envelope(response)
    assert response.status_code == 403
    assert "tickets:create" in body["errorMsg"]
    assert admin.count_tickets() == 0


# Idempotency


def test_rma_replay_with_the_same_key_answers_the_same_ticket(
    api: httpx.Client, credentials: Credentials, admin: AdminStore
) -> None:
    request = rma_request(contactPhoneNumber="+1-555-123-4567")

    first = post_rma(api, credentials, request, **{"Idempotency-Key": "rma-1"})
    second = post_rma(api, credentials, request, **{"Idempotency-Key": "rma-1"})

    assert first.json()["success"] is True
    assert second.json() == first.json()
    assert "idempotent-replayed" not in first.headers
    assert second.headers["idempotent-replayed"] == "true"
    assert admin.count_tickets() == 1


def test_rma_with_a_key_first_used_for_a_ticket_is_a_reused_key(
    api: httpx.Client, credentials: Credentials, admin: AdminStore
) -> None:
    api.post(
        "/api/help/ticket",
        json=VALID_REQUEST,
        headers=credentials.headers(**{"Idempotency-Key": "shared"}),
    )

    response = post_rma(api, credentials, VALID_RMA, **{"Idempotency-Key": "shared"})

    body = envelope(response)
    assert response.status_code == 200
    assert (body["success"], body["error"], body["ticketId"]) == (False, True, None)
    assert body["failureReason"] == "Idempotency key reused"
    assert admin.count_tickets() == 1


def test_rma_same_key_with_another_request_is_a_reused_key(
    api: httpx.Client, credentials: Credentials, admin: AdminStore
) -> None:
    post_rma(api, credentials, VALID_RMA, **{"Idempotency-Key": "k"})

    other = rma_request(problem="Camera does not power on")
    body = post_rma(api, credentials, other, **{"Idempotency-Key": "k"}).json()

    assert body["failureReason"] == "Idempotency key reused"
    assert body["ticketId"] is None
    assert admin.count_tickets() == 1
