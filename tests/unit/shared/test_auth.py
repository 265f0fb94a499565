from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest

from ccshared.auth import LEEWAY_S, InvalidCredentials, Principal, issue_token, read_token

SECRET = b"s" * 32


def test_a_token_names_its_user_and_role() -> None:
    token = issue_token(SECRET, "王芳", "agent", ttl=timedelta(hours=8))
    assert read_token(SECRET, token) == Principal("王芳", "agent")
    assert read_token(SECRET, token).actor == "agent:王芳"


def test_expiry_allows_only_the_clock_skew_leeway() -> None:
    now = datetime.now(UTC)
    just = issue_token(SECRET, "amy", "agent", ttl=timedelta(0), now=now - timedelta(seconds=5))
    assert read_token(SECRET, just).subject == "amy"
    stale = issue_token(
        SECRET, "amy", "agent", ttl=timedelta(0), now=now - timedelta(seconds=LEEWAY_S + 5)
    )
    with pytest.raises(InvalidCredentials, match="expired"):
        read_token(SECRET, stale)


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "amy", "role": "root", "aud": "contact-center"},
        {"sub": "", "role": "agent", "aud": "contact-center"},
        {"sub": "amy", "role": "agent", "aud": "another-system"},
        {"sub": "amy", "role": "agent"},
    ],
)
def test_tokens_without_a_known_role_user_or_audience_are_refused(claims: dict) -> None:
    exp = int((datetime.now(UTC) + timedelta(hours=1)).timestamp())
    with pytest.raises(InvalidCredentials):
        read_token(SECRET, jwt.encode({**claims, "exp": exp}, SECRET))


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_only_hs256_signed_with_our_secret_is_accepted() -> None:
    exp = int((datetime.now(UTC) + timedelta(hours=1)).timestamp())
    claims = {"sub": "amy", "role": "supervisor", "aud": "contact-center", "exp": exp}
    with pytest.raises(InvalidCredentials):
        read_token(SECRET, jwt.encode(claims, b"t" * 32))
    with pytest.raises(InvalidCredentials):
        read_token(SECRET, jwt.encode(claims, SECRET, algorithm="HS512"))
    with pytest.raises(InvalidCredentials):
        read_token(SECRET, jwt.encode(claims, None, algorithm="none"))


def test_issuing_checks_role_and_subject() -> None:
    with pytest.raises(ValueError, match="role"):
        issue_token(SECRET, "amy", "admin", ttl=timedelta(hours=1))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="subject"):
        issue_token(SECRET, "", "agent", ttl=timedelta(hours=1))
