"""A typed client of the Rhombus Help Webservice ``POST /api/help/ticket`` API.

It works against Helpline and against the vendor's own service alike, and it
imports nothing from the rest of Helpline, so it can be copied out on its own.

    with HelpClient("https://helpline.example", api_key) as client:
        result = client.open_ticket(subject="Camera offline", body="Since 9am.")
    if result.success:
        print(result.ticket_id)
"""

from helpline.client._http import AsyncHelpClient, HelpClient, new_idempotency_key
from helpline.client._wire import TicketResult
from helpline.client.errors import (
    HelpApiError,
    HelpAuthError,
    HelpClientError,
    HelpResponseError,
    HelpRetriesExhausted,
)

__all__ = [
    "AsyncHelpClient",
    "HelpApiError",
    "HelpAuthError",
    "HelpClient",
    "HelpClientError",
    "HelpResponseError",
    "HelpRetriesExhausted",
    "TicketResult",
    "new_idempotency_key",
]
