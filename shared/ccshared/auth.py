"""Who is calling the contact-center UI's APIs: a signed bearer token (a JWT, EdDSA over
Ed25519) that names the user (`sub`) and their role. Agents act on their own behalf; supervisors
also shape routing and act on any ticket.

Tokens are issued by whoever signs the UI's users in (an identity provider, or
`python -m router.tokens` for development and scripts), the only holder of the private key. The
services hold only the public key: they can check a token but not mint one, so a leaked service
configuration forges nothing. Checked here: signature (EdDSA only, never what the token says),
issuer, audience, expiry (with a small leeway for clock skew), a lifetime of at most 12 hours,
and a known role. The token itself never reaches a log.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal, cast

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

Role = Literal["agent", "supervisor"]
ROLES: tuple[Role, ...] = ("agent", "supervisor")
AUDIENCE = "contact-center"
DEFAULT_ISSUER = "contact-center"
ALGORITHM = "EdDSA"
LEEWAY_S = 30
# A stolen token is good until it expires: a working day at most, whatever the issuer asks for.
MAX_LIFETIME = timedelta(hours=12)
_SUBJECT_MAX = 100

# The development key pair's public half (deploy/local/dev-token-key.DEV-ONLY.pub.pem; its
# private half is committed beside it, so anyone can mint tokens it verifies). The services use
# it by default and refuse it unless CC_DEVELOPMENT=1 (ccshared.settings).
DEV_PUBLIC_KEY_PEM = """-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAlRs/W2yG9qTZnKbe0if0bLxqcuA7twNl45j+EK9AiJg=
-----END PUBLIC KEY-----
"""
DEV_KEY_FINGERPRINT = "3f26266b1f31447b14213f2fa917532960118897b24d82181f5171ce852b71b7"


class InvalidCredentials(Exception):
    """No token, or one that is forged, malformed, expired or for someone else."""


@dataclass(frozen=True)
class Principal:
    subject: str  # the agent id for agents; the user's id for supervisors
    role: Role

    @property
    def actor(self) -> str:
        return f"{self.role}:{self.subject}"

    @property
    def is_supervisor(self) -> bool:
        return self.role == "supervisor"


def _pem_text(pem_or_path: str) -> bytes:
    text = pem_or_path.strip()
    if text.startswith("-----BEGIN"):
        return text.encode()
    try:
        return Path(text).expanduser().read_bytes()
    except OSError as exc:
        raise ValueError(
            f"is neither a PEM key nor a readable file ({type(exc).__name__})"
        ) from None


@lru_cache(maxsize=16)
def load_public_key(pem_or_path: str) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM text or a PEM file's path; ValueError otherwise."""
    try:
        key = serialization.load_pem_public_key(_pem_text(pem_or_path))
    except (ValueError, TypeError):
        raise ValueError("is not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("must be an Ed25519 public key (EdDSA)")
    return key


def load_private_key(pem_or_path: str) -> Ed25519PrivateKey:
    """An Ed25519 private key from PEM text or a PEM file's path; ValueError otherwise."""
    try:
        key = serialization.load_pem_private_key(_pem_text(pem_or_path), password=None)
    except (ValueError, TypeError):
        raise ValueError("is not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("must be an Ed25519 private key (EdDSA)")
    return key


def fingerprint(key: Ed25519PublicKey) -> str:
    """SHA-256 of the raw public key, hex: compares keys whatever their PEM layout."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def issue_token(
    private_key: Ed25519PrivateKey,
    subject: str,
    role: Role,
    *,
    ttl: timedelta,
    issuer: str = DEFAULT_ISSUER,
    now: datetime | None = None,
) -> str:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if not subject or len(subject) > _SUBJECT_MAX:
        raise ValueError("subject must be 1-100 characters")
    if ttl > MAX_LIFETIME:
        raise ValueError(f"a token lives at most {MAX_LIFETIME.total_seconds() / 3600:g} hours")
    if not issuer:
        raise ValueError("a token needs an issuer")
    issued = now or datetime.now(UTC)
    claims = {
        "iss": issuer,
        "sub": subject,
        "role": role,
        "aud": AUDIENCE,
        "iat": int(issued.timestamp()),
        "exp": int((issued + ttl).timestamp()),
    }
    return jwt.encode(claims, private_key, algorithm=ALGORITHM)


def read_token(public_key: Ed25519PublicKey, token: str, *, issuer: str) -> Principal:
    return _verify(public_key, token, issuer)[0]


def _verify(public_key: Ed25519PublicKey, token: str, issuer: str) -> tuple[Principal, float]:
    """The token's principal and expiry (unix seconds); InvalidCredentials otherwise."""
    try:
        claims = jwt.decode(
            token,
            public_key,
            algorithms=[ALGORITHM],  # never "none", never HS256, never what the token says
            audience=AUDIENCE,
            issuer=issuer,
            leeway=LEEWAY_S,
            options={"require": ["iss", "sub", "aud", "iat", "exp"]},
        )
    except jwt.ExpiredSignatureError:
        raise InvalidCredentials("the token has expired") from None
    except jwt.PyJWTError:
        raise InvalidCredentials("the token is not valid") from None
    try:
        expires, lifetime = float(claims["exp"]), float(claims["exp"]) - float(claims["iat"])
    except (TypeError, ValueError):
        raise InvalidCredentials("the token is not valid") from None
    if lifetime > MAX_LIFETIME.total_seconds():
        raise InvalidCredentials("the token lives longer than the 12 hours allowed")
    role, subject = claims.get("role"), claims.get("sub")
    if role not in ROLES:
        raise InvalidCredentials("the token has no known role")
    if not isinstance(subject, str) or not subject or len(subject) > _SUBJECT_MAX:
        raise InvalidCredentials("the token names no user")
    return Principal(subject=subject, role=cast(Role, role)), expires


class TokenVerifier:
    """`read_token` that remembers the tokens it accepted until they expire. A user's UI sends
    the same token with every call, and checking an Ed25519 signature costs ~0.1 ms of CPU
    (four times HS256's): the same bytes verified once give the same answer until `exp`.
    Refused tokens are not remembered, so garbage cannot crowd the accepted ones out."""

    def __init__(self, public_key: Ed25519PublicKey, issuer: str, *, size: int = 4096) -> None:
        self._key, self._issuer, self._size = public_key, issuer, size
        self._accepted: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    def read(self, token: str, now: float | None = None) -> Principal:
        remembered = self._accepted.get(token)
        if remembered is None:
            principal, expires = _verify(self._key, token, self._issuer)
            self._accepted[token] = (principal, expires)
            if len(self._accepted) > self._size:
                self._accepted.popitem(last=False)
            return principal
        principal, expires = remembered
        if (time.time() if now is None else now) > expires + LEEWAY_S:
            del self._accepted[token]
            raise InvalidCredentials("the token has expired")
        self._accepted.move_to_end(token)
        return principal


@lru_cache(maxsize=16)
def verifier_for(public_key_pem_or_path: str, issuer: str) -> TokenVerifier:
    """One verifier (and so one memory) per configured key and issuer in this process."""
    return TokenVerifier(load_public_key(public_key_pem_or_path), issuer)
