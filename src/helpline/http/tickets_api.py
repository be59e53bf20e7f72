"""``/api/help/ticket`` and ``/api/help/rma``: the operations that open a ticket."""

from __future__ import annotations

from helpline.domain.rma import prepare_rma
from helpline.domain.tickets import NewTicket, prepare_ticket
from helpline.http import wire
from helpline.http.call import Call, Response
from helpline.http.outcomes import answer_stored


async def create_ticket(call: Call) -> Response:
    submission, notes = await call.json(wire.CreateTicketRequest)
    ticket = prepare_ticket(
        submission,
        rules=call.settings.ticket_rules,
        submitter=call.submitter,
        now_ms=call.now_ms,
    )
    return await store_ticket(call, ticket, notes=notes)


async def create_rma(call: Call) -> Response:
    submission, notes = await call.json(wire.RmaRequest)
    ticket = prepare_rma(
        submission,
        rules=call.settings.ticket_rules,
        submitter=call.submitter,
        now_ms=call.now_ms,
    )
    return await store_ticket(call, ticket, notes=notes)


async def store_ticket(call: Call, ticket: NewTicket, *, notes: list[str]) -> Response:
    """Store a prepared ticket and answer with its id (or the first answer again).

    ``notes`` are warnings found before the domain saw the request.
    """
    warning_msg = "; ".join([*notes, *ticket.warnings]) or None
    outcome = await call.store.create_ticket(
        ticket, claim=call.claim(ticket.fingerprint), warning_msg=warning_msg
    )
    return answer_stored(outcome, warning_msg=warning_msg, success=ticket_answer)


def ticket_answer(ticket_id: int | None, warning_msg: str | None) -> wire.Answer:
    return wire.TicketAnswer(
        success=True, ticket_id=ticket_id, error=False, warning_msg=warning_msg
    )
