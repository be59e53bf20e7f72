"""The ticket rules, called directly: what ``prepare_ticket`` keeps, changes, refuses.

Properties state rules over many generated submissions; the example tables pin the
edges each failure in the catalogue is about. No server and no database: these are
the domain rules alone.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from helpline.domain.failures import DomainFailure, FailureReason
from helpline.domain.tickets import NewTicket, Submitter, TicketRules, prepare_ticket

RULES = TicketRules()
NOW_MS = 1_750_000_000_000
HOUR_MS = 3_600_000
BUDGET = settings(max_examples=150, derandomize=True, deadline=None)


@dataclass(frozen=True)
class Submission:
    subject: str | None = "Camera offline"
    body: str | None = None
    collaborators: Sequence[str | None] | None = None
    serial_numbers: Sequence[str | None] | None = None
    product_type: str | None = None
    service_type: str | None = None
    console_access_granted: bool | None = None


def prepare(
    submission: Submission | NewTicket,
    rules: TicketRules = RULES,
    *,
    now_ms: int = NOW_MS,
) -> NewTicket:
    return prepare_ticket(
        submission,
        rules=rules,
        submitter=Submitter(organization_id=1, api_key_id=7, email="ops@acme.example"),
        now_ms=now_ms,
    )


def failure_of(submission: Submission, rules: TicketRules = RULES) -> DomainFailure:
    with pytest.raises(DomainFailure) as caught:
        prepare(submission, rules)
    return caught.value


def asked_for(ticket: NewTicket) -> tuple[object, ...]:
    return (
        ticket.subject,
        ticket.body,
        ticket.collaborators,
        ticket.serial_numbers,
        ticket.product_type,
        ticket.service_type,
        ticket.console_access_granted,
    )


# Characters a word may hold: no controls, no separators, nothing str.strip() eats.
WORD_CHARACTERS = st.characters(exclude_categories=("C", "Z"))
words = st.text(WORD_CHARACTERS, min_size=1, max_size=12)
subjects = st.lists(words, min_size=1, max_size=8).map(" ".join)
short_names = st.lists(words, min_size=1, max_size=4).map(" ".join)
padding = st.text(st.sampled_from(" \t\n\r\u00a0\u2003\u3000"), max_size=4)
line_breaks = st.sampled_from([" ", "\n", "\t", " \r\n ", "\t\t"])
multiline_text = st.lists(st.tuples(words, line_breaks), min_size=1, max_size=6).map(
    lambda parts: "".join(word + gap for word, gap in parts).strip()
)
padded_multiline_text = st.tuples(padding, multiline_text, padding).map("".join)
CONTROL_CHARACTERS = [
    chr(code) for code in (*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F)
]

ADDRESSES = [
    "ann@acme.example",
    "bob.smith@acme.example",
    "eve@help.example.com",
    "ops@bücher.example",
]
letter_case: st.SearchStrategy[Callable[[str], str]] = st.sampled_from(
    [str, str.upper, str.lower, str.title, str.swapcase]
)
spelled_addresses = st.builds(
    lambda spell, address: spell(address), letter_case, st.sampled_from(ADDRESSES)
)


def _spelled_as_normalized(address: str) -> str:
    """The spelling ``normalize_email`` gives: local part as sent, domain lowered."""
    local, _, domain = address.strip().partition("@")
    return f"{local}@{domain.lower()}"


def _domain_upper_cased(address: str) -> str:
    local, _, domain = address.partition("@")
    return f"{local}@{domain.upper()}"


SERIAL_CHARACTERS = string.ascii_uppercase + string.digits
plausible_serials = (
    st.lists(st.text(SERIAL_CHARACTERS, min_size=1, max_size=8), min_size=1, max_size=6)
    .map("-".join)
    .filter(lambda serial: 4 <= len(serial) <= 40)
    .filter(lambda serial: any(character.isdigit() for character in serial))
)

submissions = st.builds(
    Submission,
    subject=padded_multiline_text,
    body=st.one_of(st.none(), padded_multiline_text),
    collaborators=st.one_of(
        st.none(),
        st.lists(
            st.one_of(st.none(), spelled_addresses),
            max_size=6,
        ),
    ),
    serial_numbers=st.one_of(
        st.none(),
        st.lists(
            st.one_of(
                st.none(), st.builds(str.lower, plausible_serials), plausible_serials
            ),
            max_size=6,
        ),
    ),
    product_type=st.one_of(st.none(), st.tuples(padding, short_names).map("".join)),
    service_type=st.one_of(st.none(), short_names),
    console_access_granted=st.one_of(st.none(), st.booleans()),
)


# --- subject and free text -------------------------------------------------------


@BUDGET
@given(core=subjects, before=padding, after=padding)
def test_whitespace_around_a_subject_is_trimmed_with_a_warning(
    core: str, before: str, after: str
) -> None:
    assume(before or after)

    ticket = prepare(Submission(subject=f"{before}{core}{after}"))

    assert ticket.subject == core
    assert ticket.warnings == ("subject: surrounding whitespace was trimmed",)


@BUDGET
@given(submission=submissions)
def test_preparing_a_prepared_ticket_again_changes_nothing(
    submission: Submission,
) -> None:
    first = prepare(submission)

    again = prepare(first)

    assert asked_for(again) == asked_for(first)
    assert again.warnings == ()


@BUDGET
@given(limit=st.integers(1, 300), data=st.data())
def test_subject_exactly_at_the_limit_is_kept(limit: int, data: st.DataObject) -> None:
    subject = data.draw(st.text(WORD_CHARACTERS, min_size=limit, max_size=limit))

    ticket = prepare(Submission(subject=subject), TicketRules(max_subject_length=limit))

    assert ticket.subject == subject


@BUDGET
@given(limit=st.integers(1, 300), extra=st.integers(1, 40), data=st.data())
def test_subject_over_the_limit_fails_subject_too_long(
    limit: int, extra: int, data: st.DataObject
) -> None:
    size = limit + extra
    subject = data.draw(st.text(WORD_CHARACTERS, min_size=size, max_size=size))

    failure = failure_of(
        Submission(subject=subject), TicketRules(max_subject_length=limit)
    )

    assert failure.reason is FailureReason.SUBJECT_TOO_LONG
    assert f"{size} characters" in failure.detail


@pytest.mark.parametrize("field", ["subject", "body", "product_type", "service_type"])
@BUDGET
@given(
    text=padded_multiline_text,
    control=st.sampled_from(CONTROL_CHARACTERS),
    data=st.data(),
)
def test_control_character_anywhere_in_text_fails_invalid_characters(
    field: str, text: str, control: str, data: st.DataObject
) -> None:
    position = data.draw(st.integers(0, len(text)), label="position")
    corrupted = text[:position] + control + text[position:]

    failure = failure_of(replace(Submission(), **{field: corrupted}))

    assert failure.reason is FailureReason.INVALID_TEXT
    assert f"U+{ord(control):04X}" in failure.detail


# --- collaborators ---------------------------------------------------------------


@BUDGET
@given(sent=st.lists(spelled_addresses, min_size=1, max_size=12))
def test_collaborators_dedupe_case_insensitively_keeping_first_seen_order(
    sent: list[str],
) -> None:
    expected: dict[str, str] = {}
    for address in sent:
        expected.setdefault(address.casefold(), _spelled_as_normalized(address))

    ticket = prepare(Submission(collaborators=sent))

    assert ticket.collaborators == tuple(expected.values())
    dropped = [note for note in ticket.warnings if "duplicate of" in note]
    assert len(dropped) == len(sent) - len(expected)


@BUDGET
@given(
    valid=st.lists(st.sampled_from(ADDRESSES), max_size=3),
    invalid=st.text(max_size=300).filter(lambda text: "@" not in text),
)
def test_collaborator_without_at_sign_fails_invalid_email_naming_its_index(
    valid: list[str], invalid: str
) -> None:
    failure = failure_of(Submission(collaborators=[*valid, invalid]))

    assert failure.reason is FailureReason.INVALID_EMAIL
    assert failure.detail.startswith(f"collaborators[{len(valid)}]")


@BUDGET
@given(limit=st.integers(0, 6), over=st.integers(1, 5))
def test_more_distinct_collaborators_than_the_limit_fails(
    limit: int, over: int
) -> None:
    addresses = [f"user{number}@acme.example" for number in range(limit + over)]

    failure = failure_of(
        Submission(collaborators=addresses), TicketRules(max_collaborators=limit)
    )

    assert failure.reason is FailureReason.TOO_MANY_COLLABORATORS
    assert f"{limit + over} distinct" in failure.detail


@BUDGET
@given(limit=st.integers(0, 6))
def test_duplicates_do_not_count_toward_the_collaborator_limit(limit: int) -> None:
    distinct = [f"user{number}@acme.example" for number in range(limit)]
    repeated = [address.upper() for address in distinct]

    ticket = prepare(
        Submission(collaborators=distinct + repeated),
        TicketRules(max_collaborators=limit),
    )

    assert ticket.collaborators == tuple(distinct)


# --- serial numbers --------------------------------------------------------------


@BUDGET
@given(serial=plausible_serials, spell=letter_case, before=padding, after=padding)
def test_plausible_serial_numbers_pass_upper_cased(
    serial: str, spell: Callable[[str], str], before: str, after: str
) -> None:
    ticket = prepare(Submission(serial_numbers=[f"{before}{spell(serial)}{after}"]))

    assert ticket.serial_numbers == (serial,)


@BUDGET
@given(
    serial=plausible_serials,
    intruder=st.characters(
        exclude_characters=string.ascii_letters + string.digits + "-",
        exclude_categories=("Cs",),
    ),
    data=st.data(),
)
def test_serial_number_with_any_other_character_fails_invalid_serial_number(
    serial: str, intruder: str, data: st.DataObject
) -> None:
    # Strictly inside, so surrounding whitespace is not merely trimmed away.
    position = data.draw(st.integers(1, len(serial) - 1), label="position")
    sent = serial[:position] + intruder + serial[position:]

    failure = failure_of(Submission(serial_numbers=["AB-1234", sent]))

    assert failure.reason is FailureReason.INVALID_SERIAL_NUMBER
    assert failure.detail.startswith("serialNumbers[1]")


# --- catalogues ------------------------------------------------------------------

PRODUCT_TYPES = ("Camera", "Access Control", "Environmental Sensor")
SERVICE_TYPES = ("Support", "Installation", "Billing")
CATALOGUED = TicketRules(product_types=PRODUCT_TYPES, service_types=SERVICE_TYPES)
CATALOGUE_FIELDS = [
    pytest.param(
        "product_type",
        PRODUCT_TYPES,
        FailureReason.UNKNOWN_PRODUCT_TYPE,
        id="productType",
    ),
    pytest.param(
        "service_type",
        SERVICE_TYPES,
        FailureReason.UNKNOWN_SERVICE_TYPE,
        id="serviceType",
    ),
]


@pytest.mark.parametrize(("field", "catalogue", "reason"), CATALOGUE_FIELDS)
@BUDGET
@given(
    value=st.text(
        st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=30
    ),
)
def test_value_outside_the_catalogue_fails_unknown(
    field: str, catalogue: tuple[str, ...], reason: FailureReason, value: str
) -> None:
    known = {entry.casefold() for entry in catalogue}
    assume(value.strip() and value.strip().casefold() not in known)

    failure = failure_of(replace(Submission(), **{field: value}), CATALOGUED)

    assert failure.reason is reason


@pytest.mark.parametrize(("field", "catalogue", "reason"), CATALOGUE_FIELDS)
@BUDGET
@given(data=st.data(), before=padding, after=padding)
def test_catalogue_match_in_any_letter_case_takes_the_catalogue_spelling(
    field: str,
    catalogue: tuple[str, ...],
    reason: FailureReason,
    data: st.DataObject,
    before: str,
    after: str,
) -> None:
    entry = data.draw(st.sampled_from(catalogue), label="entry")
    flips = data.draw(st.lists(st.booleans(), min_size=len(entry), max_size=len(entry)))
    spelled = "".join(
        character.swapcase() if flip else character
        for character, flip in zip(entry, flips, strict=True)
    )

    ticket = prepare(
        replace(Submission(), **{field: f"{before}{spelled}{after}"}), CATALOGUED
    )

    assert getattr(ticket, field) == entry


# --- fingerprint -----------------------------------------------------------------


@BUDGET
@given(
    subject=subjects,
    addresses=st.lists(st.sampled_from(ADDRESSES), max_size=4),
    serials=st.lists(plausible_serials, max_size=4),
    before=padding,
    after=padding,
    later_ms=st.integers(0, 10**9),
)
def test_submissions_that_normalize_alike_share_a_fingerprint(
    subject: str,
    addresses: list[str],
    serials: list[str],
    before: str,
    after: str,
    later_ms: int,
) -> None:
    tidy = Submission(subject=subject, collaborators=addresses, serial_numbers=serials)
    untidy = Submission(
        subject=f"{before}{subject}{after}",
        collaborators=[_domain_upper_cased(a) for a in addresses] + [None, *addresses],
        serial_numbers=[f" {serial.lower()} " for serial in serials] + serials,
    )

    tidy_ticket = prepare(tidy)
    untidy_ticket = prepare(untidy, now_ms=NOW_MS + later_ms)

    assert untidy_ticket.warnings
    assert untidy_ticket.fingerprint() == tidy_ticket.fingerprint()


@BUDGET
@given(pair=st.lists(subjects, min_size=2, max_size=2, unique=True))
def test_different_subjects_give_different_fingerprints(pair: list[str]) -> None:
    first, second = (prepare(Submission(subject=subject)) for subject in pair)

    assert first.fingerprint() != second.fingerprint()


# --- the edges of each failure, by example ---------------------------------------


@pytest.mark.parametrize(
    ("subject", "body"),
    [(None, None), ("", ""), ("   ", None), (None, "\n\t "), ("\r\n", "\u3000")],
)
def test_no_subject_and_no_body_fails_missing_content(
    subject: str | None, body: str | None
) -> None:
    failure = failure_of(Submission(subject=subject, body=body))

    assert failure.reason is FailureReason.MISSING_CONTENT


@pytest.mark.parametrize(("size", "accepted"), [(10, True), (11, False)])
def test_body_over_the_limit_fails_body_too_long(size: int, accepted: bool) -> None:
    submission = Submission(body="b" * size)
    rules = TicketRules(max_body_length=10)

    if accepted:
        assert prepare(submission, rules).body == "b" * size
    else:
        assert failure_of(submission, rules).reason is FailureReason.BODY_TOO_LONG


def test_subject_line_breaks_and_tabs_become_single_spaces() -> None:
    ticket = prepare(Submission(subject="Camera\r\n offline\t\tsince  noon"))

    assert ticket.subject == "Camera offline since  noon"
    assert ticket.warnings == ("subject: line breaks and tabs were replaced by spaces",)


@pytest.mark.parametrize(
    "subject",
    [
        "\x1cCamera\noffline",
        "Camera\toffline\x1f",
        "\x0bCamera\noffline\x0c",
        "Camera\x1c\noffline",
        "Camera\t\x1foffline",
    ],
)
def test_control_character_beside_a_line_break_in_a_subject_fails(
    subject: str,
) -> None:
    failure = failure_of(Submission(subject=subject))

    assert failure.reason is FailureReason.INVALID_TEXT


@pytest.mark.parametrize(
    ("body", "stored"),
    [
        ("line one\nline two", "line one\nline two"),
        ("col\tcol", "col\tcol"),
        ("crlf\r\nend", "crlf\nend"),
        ("old mac\rend", "old mac\nend"),
    ],
)
def test_tabs_and_line_breaks_inside_a_body_are_allowed(body: str, stored: str) -> None:
    assert prepare(Submission(body=body)).body == stored


@pytest.mark.parametrize(
    "address",
    [
        "",
        "ann",
        "ann@",
        "@acme.example",
        "ann@@acme.example",
        "ann@acme",
        "ann.@acme.example",
        "ann@acme.invalid",
        "ann@" + "a" * 250 + ".example",
    ],
)
def test_malformed_collaborator_address_fails_invalid_email(address: str) -> None:
    failure = failure_of(Submission(collaborators=["it@acme.example", address]))

    assert failure.reason is FailureReason.INVALID_EMAIL
    assert failure.detail.startswith("collaborators[1]")


def test_null_collaborators_and_serial_numbers_are_dropped_with_a_warning() -> None:
    ticket = prepare(
        Submission(collaborators=[None, "it@acme.example"], serial_numbers=[None])
    )

    assert ticket.collaborators == ("it@acme.example",)
    assert ticket.serial_numbers == ()
    assert "collaborators: 1 null entries were dropped" in ticket.warnings
    assert "serialNumbers: 1 null entries were dropped" in ticket.warnings


@pytest.mark.parametrize(
    ("sent", "stored"),
    [("a1b2", "A1B2"), ("RCAM-1234-ABCD", "RCAM-1234-ABCD"), ("9" * 40, "9" * 40)],
)
def test_serial_number_at_the_edges_of_the_rules_passes(sent: str, stored: str) -> None:
    assert prepare(Submission(serial_numbers=[sent])).serial_numbers == (stored,)


@pytest.mark.parametrize(
    "serial",
    [
        "A12",  # too short
        "9" * 41,  # too long
        "ABCD",  # no digit
        "AB--12",  # empty group
        "-AB12",
        "AB12-",
        "AB 12",
        "AB_12",
        "",
    ],
)
def test_implausible_serial_number_fails_invalid_serial_number(serial: str) -> None:
    failure = failure_of(Submission(serial_numbers=[serial]))

    assert failure.reason is FailureReason.INVALID_SERIAL_NUMBER


@pytest.mark.parametrize(
    "serial",
    [
        "\u017f1234",  # LATIN SMALL LETTER LONG S, upper-cased to "S"
        "\u0131-1234",  # LATIN SMALL LETTER DOTLESS I, upper-cased to "I"
        "\ufb011234",  # LATIN SMALL LIGATURE FI, upper-cased to "FI"
    ],
)
def test_serial_number_with_a_non_ascii_letter_fails_even_if_it_upper_cases_to_ascii(
    serial: str,
) -> None:
    failure = failure_of(Submission(serial_numbers=[serial]))

    assert failure.reason is FailureReason.INVALID_SERIAL_NUMBER


def test_more_distinct_serial_numbers_than_the_limit_fails() -> None:
    rules = TicketRules(max_serial_numbers=2)
    within = Submission(serial_numbers=["AB-1", "ab-1", "CD-2"])
    beyond = Submission(serial_numbers=["AB-1", "CD-2", "EF-3"])

    assert prepare(within, rules).serial_numbers == ("AB-1", "CD-2")
    assert failure_of(beyond, rules).reason is FailureReason.TOO_MANY_SERIAL_NUMBERS


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("product_type", "x" * 65, FailureReason.INVALID_PRODUCT_TYPE),
        ("service_type", "x" * 65, FailureReason.INVALID_SERVICE_TYPE),
        ("product_type", "Camera\u2028Pro", FailureReason.INVALID_PRODUCT_TYPE),
        ("service_type", "On\u00a0site", FailureReason.INVALID_SERVICE_TYPE),
    ],
)
def test_uncatalogued_value_too_long_or_unprintable_fails_invalid(
    field: str, value: str, reason: FailureReason
) -> None:
    failure = failure_of(replace(Submission(), **{field: value}))

    assert failure.reason is reason


@pytest.mark.parametrize("field", ["product_type", "service_type"])
def test_uncatalogued_value_at_the_length_limit_is_kept(field: str) -> None:
    ticket = prepare(replace(Submission(), **{field: "x" * 64}))

    assert getattr(ticket, field) == "x" * 64


@pytest.mark.parametrize(
    ("granted", "expires_at_ms"),
    [(True, NOW_MS + 72 * HOUR_MS), (False, None), (None, None)],
)
def test_console_access_expires_after_the_configured_hours_only_when_granted(
    granted: bool | None, expires_at_ms: int | None
) -> None:
    ticket = prepare(Submission(console_access_granted=granted))

    assert ticket.console_access_granted is granted
    assert ticket.console_access_expires_at_ms == expires_at_ms
