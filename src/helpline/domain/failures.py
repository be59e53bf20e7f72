"""The catalogue of domain failures.

A domain failure is a request that was well formed but cannot become a ticket. On the
wire it is an HTTP 200 with ``success: false`` and one of these stable
``failureReason`` strings; clients match on the string, so a string never changes once
published. The detail (which field, which limit) goes in ``errorMsg``.
"""

from __future__ import annotations

import enum


class FailureReason(enum.StrEnum):
    INVALID_EMAIL = "Invalid email address"
    MISSING_CONTENT = "Missing subject and body"
    SUBJECT_TOO_LONG = "Subject too long"
    BODY_TOO_LONG = "Body too long"
    TOO_MANY_COLLABORATORS = "Too many collaborators"
    TOO_MANY_SERIAL_NUMBERS = "Too many serial numbers"
    INVALID_SERIAL_NUMBER = "Invalid serial number"
    INVALID_TEXT = "Invalid characters"
    INVALID_PRODUCT_TYPE = "Invalid product type"
    INVALID_SERVICE_TYPE = "Invalid service type"
    UNKNOWN_PRODUCT_TYPE = "Unknown product type"
    UNKNOWN_SERVICE_TYPE = "Unknown service type"
    IDEMPOTENCY_KEY_REUSED = "Idempotency key reused"
    MISSING_PROBLEM = "Missing problem"
    INVALID_PHONE_NUMBER = "Invalid phone number"
    INVALID_SHIPPING_ADDRESS = "Invalid shipping address"
    INVALID_CONTACT_NAME = "Invalid contact name"
    INVALID_DEVICE_NAME = "Invalid device name"
    INVALID_FEEDBACK = "Invalid feedback content"
    FILE_TOO_LARGE = "File too large"
    TOO_MANY_FILES = "Too many files"
    MISSING_REQUEST_PART = "Missing request part"


class DomainFailure(Exception):
    """A request that cannot be carried out, with a stable reason and its detail."""

    def __init__(self, reason: FailureReason, detail: str) -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"
