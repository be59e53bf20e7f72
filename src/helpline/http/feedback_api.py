"""``/api/help/feedback``: what integrators think of the service."""

from __future__ import annotations

from helpline.domain.feedback import prepare_feedback
from helpline.http import wire
from helpline.http.call import Call, Response
from helpline.http.outcomes import answer_stored


async def send_feedback(call: Call) -> Response:
    request, notes = await call.json(wire.FeedbackRequest)
    feedback = prepare_feedback(
        request.feedback,
        submitter=call.submitter,
        now_ms=call.now_ms,
    )
    warning_msg = "; ".join([*notes, *feedback.warnings]) or None

    outcome = await call.store.record_feedback(
        feedback, claim=call.claim(feedback.fingerprint), warning_msg=warning_msg
    )

    return answer_stored(outcome, warning_msg=warning_msg, success=_feedback_answer)


def _feedback_answer(_: int | None, warning_msg: str | None) -> wire.Answer:
    return wire.FeedbackAnswer(success=True, error=False, warning_msg=warning_msg)
