"""``/api/help/openTickets`` and ``/api/help/openTicketsV2``: what is still open."""

from __future__ import annotations

from helpline.domain.clock import iso_utc
from helpline.http import wire
from helpline.http.call import Call, Response
from helpline.storage.records import TicketSummary

PAGE_SIZE = 100
WINDOW_CAP = 1_000


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
        tickets=[_information(ticket) for ticket in found.tickets],
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

    async def open_in_window(submitter: str | None) -> list[TicketSummary]:
        return await call.store.open_tickets_in_window(
            organization_id=call.key.organization_id,
            start_ms=start,
            end_ms=end,
            submitter_email=submitter,
            limit=WINDOW_CAP + 1,  # one more than shown tells that the list was cut
        )

    organization = await open_in_window(None)
    own = await open_in_window(call.key.user_email)

    for name, found in (("tickets", organization), ("userTickets", own)):
        if len(found) > WINDOW_CAP:
            notes.append(
                f"{name}: more than {WINDOW_CAP} open tickets in the window; "
                f"the newest {WINDOW_CAP} are listed"
            )
    answer = wire.OpenTicketsV2Answer(
        error=False,
        warning_msg="; ".join(notes) or None,
        tickets=[_information(ticket) for ticket in organization[:WINDOW_CAP]],
        user_tickets=[_information(ticket) for ticket in own[:WINDOW_CAP]],
    )
    return Response(200, wire.encode(answer))


def _refused(kind: type[wire.Answer], message: str) -> Response:
    """A request that is well formed but asks for something impossible."""
    return Response(200, wire.encode(wire.failed(kind, message)))


def _information(ticket: TicketSummary) -> wire.TicketInformation:
    return wire.TicketInformation(
        id=ticket.id,
        created_at=iso_utc(ticket.created_at_ms),
        status=ticket.status,
        subject=ticket.subject,
    )
