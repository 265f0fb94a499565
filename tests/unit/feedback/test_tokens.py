from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from feedback.domain.tokens import ExpiredToken, InvalidToken, issue_token, read_token

SECRET = b"k" * 32
NOW = datetime(2025, 3, 3, 9, tzinfo=UTC)
SURVEY = uuid.UUID("0195a2b0-0000-7000-8000-000000000001")


def test_genuine_token_yields_its_survey_id() -> None:
    token = issue_token(SURVEY, NOW + timedelta(days=1), SECRET)
    assert read_token(token, SECRET, NOW) == SURVEY
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")


def test_expired_token_is_distinct_from_a_forged_one() -> None:
    token = issue_token(SURVEY, NOW, SECRET)
    with pytest.raises(ExpiredToken) as caught:
        read_token(token, SECRET, NOW)
    assert caught.value.survey_id == SURVEY


def test_token_signed_with_another_secret_is_invalid() -> None:
    token = issue_token(SURVEY, NOW + timedelta(days=1), b"other")
    with pytest.raises(InvalidToken):
        read_token(token, SECRET, NOW)


def test_extending_the_expiry_breaks_the_signature() -> None:
    short = issue_token(SURVEY, NOW - timedelta(seconds=1), SECRET)
    longer = issue_token(SURVEY, NOW + timedelta(days=365), b"attacker")
    forged = longer.split(".")[0] + "." + short.split(".")[1]
    with pytest.raises(InvalidToken):
        read_token(forged, SECRET, NOW)


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "!!!.???", "AAAA.AAAA"])
def test_malformed_tokens_are_invalid(token: str) -> None:
    with pytest.raises(InvalidToken):
        read_token(token, SECRET, NOW)


@given(st.integers(min_value=0, max_value=200), st.integers(min_value=0, max_value=255))
def test_any_single_byte_change_is_refused(position: int, value: int) -> None:
    token = issue_token(SURVEY, NOW + timedelta(days=1), SECRET)
    chars = list(token)
    index = position % len(chars)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    replacement = alphabet[value % len(alphabet)]
    if chars[index] == replacement or chars[index] == ".":
        return
    chars[index] = replacement
    tampered = "".join(chars)
    try:
        survey = read_token(tampered, SECRET, NOW)
    except InvalidToken:
        return
    # Base64's last character can carry unused padding bits: the decoded bytes are unchanged.
    assert survey == SURVEY


def test_only_the_canonical_spelling_of_a_token_is_accepted() -> None:
    survey = uuid.uuid4()
    token = issue_token(survey, NOW + timedelta(days=1), SECRET)
    body, mac = token.split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    # The last character of a 32-byte MAC carries 2 unused bits: 3 other characters decode to
    # the same bytes, and the decoder skips characters outside the alphabet.
    same_bytes = [
        f"{body}.{mac[:-1]}{c}"
        for c in alphabet
        if c != mac[-1] and alphabet.index(c) >> 2 == alphabet.index(mac[-1]) >> 2
    ]
    assert len(same_bytes) == 3
    for variant in [*same_bytes, f"{body}.{mac[:5]}!{mac[5:]}", f"{body[:3]}\n{body[3:]}.{mac}"]:
        with pytest.raises(InvalidToken):
            read_token(variant, SECRET, NOW)
    assert read_token(token, SECRET, NOW) == survey
