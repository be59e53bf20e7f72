"""``/api/help/ticketWithFile``: a ticket with one file, as multipart/form-data."""

from __future__ import annotations

from helpline.http.call import Call, Response
from helpline.http.errors import ApiError


async def create_ticket_with_file(call: Call) -> Response:
    raise ApiError(404, "ticketWithFile is not served by this version of Helpline.")
