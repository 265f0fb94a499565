from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ccshared.auth import (
    DEV_KEY_FINGERPRINT,
    DEV_PUBLIC_KEY_PEM,
    LEEWAY_S,
    InvalidCredentials,
    Principal,
    TokenVerifier,
    fingerprint,
    issue_token,
    load_public_key,
    read_token,
)
from tests.helpers import DEV_PRIVATE_KEY_FILE, dev_private_key

KEY = Ed25519PrivateKey.generate()
PUBLIC = KEY.public_key()
ISSUER = "contact-center"
# The secret every service shipped with before tokens were signed with Ed25519.
OLD_HS256_DEFAULT = b"local-dev-router-auth-secret-change-me"


def _claims(**changes: Any) -> dict[str, Any]:
    now = int(datetime.now(UTC).timestamp())
    claims = {
        "iss": ISSUER,
        "sub": "amy",
        "role": "supervisor",
        "aud": "contact-center",
        "iat": now,
        "exp": now + 3600,
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _read(token: str) -> Principal:
    return read_token(PUBLIC, token, issuer=ISSUER)


def test_a_token_names_its_user_and_role() -> None:
    token = issue_token(KEY, "王芳", "agent", ttl=timedelta(hours=8))
    assert _read(token) == Principal("王芳", "agent")
    assert _read(token).actor == "agent:王芳"


def test_expiry_allows_only_the_clock_skew_leeway() -> None:
    now = datetime.now(UTC)
    just = issue_token(KEY, "amy", "agent", ttl=timedelta(0), now=now - timedelta(seconds=5))
    assert _read(just).subject == "amy"
    stale = issue_token(
        KEY, "amy", "agent", ttl=timedelta(0), now=now - timedelta(seconds=LEEWAY_S + 5)
    )
    with pytest.raises(InvalidCredentials, match="expired"):
        _read(stale)


@pytest.mark.parametrize(
    "changes",
    [
        {"role": "root"},
        {"sub": ""},
        {"aud": "another-system"},
        {"aud": None},
        {"iss": "someone-else"},
        {"iss": None},
        {"iat": None},
        {"exp": None},
        {"iat": "yesterday"},
    ],
    ids=repr,
)
def test_tokens_without_a_known_role_user_audience_issuer_or_times_are_refused(
    changes: dict[str, Any],
) -> None:
    with pytest.raises(InvalidCredentials):
        _read(jwt.encode(_claims(**changes), KEY, algorithm="EdDSA"))


def test_a_token_living_longer_than_12_hours_is_refused_even_if_signed() -> None:
    now = int(datetime.now(UTC).timestamp())
    twelve = jwt.encode(_claims(iat=now, exp=now + 12 * 3600), KEY, algorithm="EdDSA")
    assert _read(twelve).subject == "amy"
    ten_years = jwt.encode(_claims(iat=now, exp=now + 10 * 365 * 86_400), KEY, algorithm="EdDSA")
    with pytest.raises(InvalidCredentials, match="12 hours"):
        _read(ten_years)
    # Backdating iat does not buy a longer life either: exp - iat is what counts.
    backdated = jwt.encode(_claims(iat=now - 3600, exp=now + 12 * 3600), KEY, algorithm="EdDSA")
    with pytest.raises(InvalidCredentials, match="12 hours"):
        _read(backdated)


def test_issuing_a_token_longer_than_12_hours_is_an_error() -> None:
    with pytest.raises(ValueError, match="12 hours"):
        issue_token(KEY, "amy", "agent", ttl=timedelta(hours=12, seconds=1))


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_only_eddsa_signed_by_the_issuers_key_is_accepted() -> None:
    claims = _claims()
    with pytest.raises(InvalidCredentials):  # the old shared HS256 secret mints nothing now
        _read(jwt.encode(claims, OLD_HS256_DEFAULT, algorithm="HS256"))
    with pytest.raises(InvalidCredentials):  # another Ed25519 key
        _read(jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA"))
    with pytest.raises(InvalidCredentials):
        _read(jwt.encode(claims, None, algorithm="none"))
    # HS256 keyed with the public key's PEM (the classic algorithm-confusion forgery).
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
    mac = hmac.new(DEV_PUBLIC_KEY_PEM.encode(), header + b"." + body, hashlib.sha256).digest()
    forged = b".".join([header, body, base64.urlsafe_b64encode(mac).rstrip(b"=")]).decode()
    with pytest.raises(InvalidCredentials):
        read_token(load_public_key(DEV_PUBLIC_KEY_PEM), forged, issuer=ISSUER)


def test_issuing_checks_role_and_subject() -> None:
    with pytest.raises(ValueError, match="role"):
        issue_token(KEY, "amy", "admin", ttl=timedelta(hours=1))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="subject"):
        issue_token(KEY, "", "agent", ttl=timedelta(hours=1))


def test_the_committed_development_key_pair_matches_the_fingerprint_the_services_refuse() -> None:
    public = load_public_key(DEV_PUBLIC_KEY_PEM)
    assert fingerprint(public) == DEV_KEY_FINGERPRINT
    assert fingerprint(dev_private_key().public_key()) == DEV_KEY_FINGERPRINT
    pub_file = DEV_PRIVATE_KEY_FILE.with_name("dev-token-key.DEV-ONLY.pub.pem")
    assert fingerprint(load_public_key(str(pub_file))) == DEV_KEY_FINGERPRINT


def test_the_verifier_remembers_an_accepted_token_only_until_it_expires() -> None:
    verifier = TokenVerifier(PUBLIC, ISSUER, size=2)
    now = datetime.now(UTC).replace(microsecond=0)
    token = issue_token(KEY, "amy", "agent", ttl=timedelta(minutes=5), now=now)
    expires = now.timestamp() + 300
    assert verifier.read(token) == Principal("amy", "agent")
    assert verifier.read(token, now=expires + LEEWAY_S) == Principal("amy", "agent")
    with pytest.raises(InvalidCredentials, match="expired"):
        verifier.read(token, now=expires + LEEWAY_S + 1)
    assert token not in verifier._accepted  # forgotten: the next read checks it in full


def test_the_verifier_refuses_what_read_token_refuses_and_remembers_only_so_many() -> None:
    verifier = TokenVerifier(PUBLIC, ISSUER, size=2)
    forger = Ed25519PrivateKey.generate()
    other_key = issue_token(forger, "amy", "supervisor", ttl=timedelta(hours=1))
    for _ in range(2):
        with pytest.raises(InvalidCredentials):
            verifier.read(other_key)
    tokens = [issue_token(KEY, f"a{i}", "agent", ttl=timedelta(hours=1)) for i in range(3)]
    for token in tokens:
        verifier.read(token)
    assert list(verifier._accepted) == tokens[1:]
