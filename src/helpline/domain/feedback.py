"""Feedback: what an integrator thinks of the service, kept for the support team."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from helpline.domain.failures import DomainFailure, FailureReason
from helpline.domain.text import clean_text, reject_control_characters
from helpline.domain.tickets import Submitter

MAX_FEEDBACK_LENGTH = 5_000


@dataclass(frozen=True, slots=True)
class NewFeedback:
    organization_id: int
    api_key_id: int
    user_email: str
    feedback: str
    created_at_ms: int
    warnings: tuple[str, ...] = ()

    def fingerprint(self) -> str:
        """A digest of the text, to tell a retry from new feedback."""
        return hashlib.sha256(b"feedback\0" + self.feedback.encode()).hexdigest()


def prepare_feedback(
    text: str | None,
    *,
    submitter: Submitter,
    now_ms: int,
) -> NewFeedback:
    """Trimmed, non-blank feedback; raises ``Invalid feedback content``."""
    warnings: list[str] = []
    if text is not None:
        reject_control_characters(
            "feedback", text, reason=FailureReason.INVALID_FEEDBACK
        )
    feedback = clean_text("feedback", text, warnings=warnings)
    if feedback is None:
        raise DomainFailure(
            FailureReason.INVALID_FEEDBACK, "feedback is required and may not be blank."
        )
    if len(feedback) > MAX_FEEDBACK_LENGTH:
        raise DomainFailure(
            FailureReason.INVALID_FEEDBACK,
            f"feedback has {len(feedback)} characters; "
            f"the limit is {MAX_FEEDBACK_LENGTH}.",
        )
    return NewFeedback(
        organization_id=submitter.organization_id,
        api_key_id=submitter.api_key_id,
        user_email=submitter.email,
        feedback=feedback,
        created_at_ms=now_ms,
        warnings=tuple(warnings),
    )
