from __future__ import annotations

import random
from datetime import timedelta

import pytest

from feedback.domain.webhooks import (
    SignatureError,
    is_retryable_status,
    retry_delay,
    retry_schedule,
    signature_header,
    verify_signature,
)

BODY = b'{"survey_id": "x"}'


def test_receiver_accepts_a_genuine_signature() -> None:
    header = signature_header("whsec", 1_700_000_000, BODY)
    assert header.startswith("t=1700000000,v1=")
    verify_signature(header, BODY, "whsec", now=1_700_000_100)


@pytest.mark.parametrize(
    ("header", "body", "secret", "now"),
    [
        (signature_header("whsec", 1_700_000_000, BODY), BODY + b" ", "whsec", 1_700_000_000),
        (signature_header("whsec", 1_700_000_000, BODY), BODY, "other", 1_700_000_000),
        (signature_header("whsec", 1_700_000_000, BODY), BODY, "whsec", 1_700_000_301),
        ("v1=abc", BODY, "whsec", 1_700_000_000),
        ("", BODY, "whsec", 1_700_000_000),
    ],
    ids=["body-changed", "wrong-secret", "replayed-too-late", "no-timestamp", "empty"],
)
def test_receiver_refuses_forged_changed_or_stale_requests(
    header: str, body: bytes, secret: str, now: int
) -> None:
    with pytest.raises(SignatureError):
        verify_signature(header, body, secret, now=now)


def test_signature_with_a_changed_timestamp_is_refused() -> None:
    header = signature_header("whsec", 1_700_000_000, BODY)
    replayed = header.replace("t=1700000000", "t=1700000200")
    with pytest.raises(SignatureError):
        verify_signature(replayed, BODY, "whsec", now=1_700_000_200)


def test_one_of_several_signatures_may_match_during_secret_rotation() -> None:
    new = signature_header("new", 1_700_000_000, BODY)
    old = signature_header("old", 1_700_000_000, BODY).split(",")[1]
    verify_signature(f"{new},{old}", BODY, "old", now=1_700_000_000)


def test_backoff_doubles_from_the_base_and_stops_at_the_cap() -> None:
    waits = retry_schedule(6, base=timedelta(seconds=1), cap=timedelta(seconds=10))
    assert waits == [timedelta(seconds=s) for s in (1, 2, 4, 8, 10)]


def test_jitter_only_lengthens_the_wait_by_at_most_its_share() -> None:
    rng = random.Random(7)
    for attempt in range(1, 10):
        plain = retry_delay(attempt)
        jittered = retry_delay(attempt, jitter=0.2, rng=rng)
        assert plain <= jittered <= plain * 1.2
    with pytest.raises(ValueError, match="start at 1"):
        retry_delay(0)


@pytest.mark.parametrize(
    ("status", "retry"),
    [(500, True), (503, True), (429, True), (408, True), (400, False), (404, False), (410, False)],
)
def test_server_errors_and_rate_limits_are_retried_client_errors_are_not(
    status: int, retry: bool
) -> None:
    assert is_retryable_status(status) is retry
