"""The answer to a write that reached storage: new, replayed, or refused."""

from __future__ import annotations

from collections.abc import Callable

from helpline.domain.failures import DomainFailure, FailureReason
from helpline.http import wire
from helpline.http.call import Response
from helpline.storage.records import Created, CreateOutcome, KeyReused, Replayed

REPLAYED_HEADER = "idempotent-replayed"

# Builds the success answer from the stored id (None for feedback) and warnings.
SuccessAnswer = Callable[[int | None, str | None], wire.Answer]


def answer_stored(
    outcome: CreateOutcome, *, warning_msg: str | None, success: SuccessAnswer
) -> Response:
    """Answer a new write, replay the first answer of a retry, or refuse a reused
    idempotency key as a domain failure."""
    match outcome:
        case Created(stored_id):
            return Response(200, wire.encode(success(stored_id, warning_msg)))
        case Replayed(stored_id, first_warning_msg):
            return Response(
                200,
                wire.encode(success(stored_id, first_warning_msg)),
                headers={REPLAYED_HEADER: "true"},
            )
        case KeyReused():
            raise DomainFailure(
                FailureReason.IDEMPOTENCY_KEY_REUSED,
                "The Idempotency-Key was first used within the last 24 hours for a "
                "different request; send a new key with a new request.",
            )
