"""Feedback's webhooks: signed as every webhook of the platform is (`ccshared.webhooks`: an
HMAC-SHA256 of `timestamp.body`, the retry schedule, the addresses a webhook may go to), under
feedback's own signature header."""

from __future__ import annotations

from ccshared.webhooks import (
    DEFAULT_TOLERANCE_S,
    AddressRefused,
    SignatureError,
    WebhookAddressRules,
    address_refusal,
    compute_signature,
    ip_literal,
    is_retryable_status,
    retry_delay,
    retry_schedule,
    signature_header,
    verify_signature,
)

SIGNATURE_HEADER = "X-Feedback-Signature"

__all__ = [
    "DEFAULT_TOLERANCE_S",
    "SIGNATURE_HEADER",
    "AddressRefused",
    "SignatureError",
    "WebhookAddressRules",
    "address_refusal",
    "compute_signature",
    "ip_literal",
    "is_retryable_status",
    "retry_delay",
    "retry_schedule",
    "signature_header",
    "verify_signature",
]
