"""``/api/help/openTickets`` and ``/api/help/openTicketsV2``: what is still open."""

from __future__ import annotations

import operator

from helpline.domain.clock import iso_utc_each
from helpline.http import wire
from helpline.http.call import Call, Response
from helpline.storage.records import TicketSummary

PAGE_SIZE = 100
WINDOW_CAP = 1_000
_CREATED_AT_MS = operator.itemgetter(1)  # of a TicketSummary


async def open_tickets(call: Call) -> Response:
    request, notes = await call.json(wire.OpenTicketsRequest, empty_means_defaults=True)
    page = 1 if request.page_number is None else request.page_number
    if page < 1:
        return _refused(
            wire.OpenTicketsAnswer,
            f"pageNumber must be 1 or more (the first page is 1), not {page}.",
        )

    found = await call.store.open_tickets_page(
        organization_id=call.key.organization_id, page=page, page_size=PAGE_SIZE
    )

    answer = wire.OpenTicketsAnswer(
        error=False,
        warning_msg="; ".join(notes) or None,
        current_page=page,
        has_nex_page=found.has_next_page,
        total_tickets=found.total,
        tickets=_listed(found.tickets),
    )
    return Response(200, wire.encode(answer))


async def open_tickets_v2(call: Call) -> Response:
    request, notes = await call.json(
        wire.OpenTicketsV2Request, empty_means_defaults=True
    )
    start, end = request.start_time_ms, request.end_time_ms
    if start is not None and end is not None and start > end:
        return _refused(
            wire.OpenTicketsV2Answer,
            f"startTimeMs ({start}) is after endTimeMs ({end}); swap them, or leave "
            "either null for an open-ended window.",
        )

    found = await call.store.open_tickets_in_window(
        organization_id=call.key.organization_id,
        start_ms=start,
        end_ms=end,
        submitter_email=call.key.user_email,
        limit=WINDOW_CAP + 1,  # one more than shown tells that the list was cut
    )

    for name, listed in (
        ("tickets", found.tickets),
        ("userTickets", found.submitter_tickets),
    ):
        if len(listed) > WINDOW_CAP:
            notes.append(
                f"{name}: more than {WINDOW_CAP} open tickets in the window; "
                f"the newest {WINDOW_CAP} are listed"
            )
    tickets: wire.TicketList = _listed(found.tickets[:WINDOW_CAP])
    if found.submitter_tickets is not found.tickets:
        user_tickets: wire.TicketList = _listed(found.submitter_tickets[:WINDOW_CAP])
    else:  # every ticket listed is the caller's own: one list, encoded once
        tickets = user_tickets = wire.encoded_once(tickets)
    answer = wire.OpenTicketsV2Answer(
        error=False,
        warning_msg="; ".join(notes) or None,
        tickets=tickets,
        user_tickets=user_tickets,
    )
    return Response(200, wire.encode(answer))


def _refused(kind: type[wire.Answer], message: str) -> Response:
    """A request that is well formed but asks for something impossible."""
    return Response(200, wire.encode(wire.failed(kind, message)))


def _listed(tickets: list[TicketSummary]) -> list[wire.TicketInformation]:
    # Positional arguments: the fields' order is TicketSummary's, and this runs
    # for each of up to 2,000 tickets per answer.
    information = wire.TicketInformation
    created_at = iso_utc_each(map(_CREATED_AT_MS, tickets))
    return [
        information(ticket_id, iso_time, status, subject)
        for (ticket_id, _, status, subject), iso_time in zip(
            tickets, created_at, strict=True
        )
    ]
