"""Who is calling the contact-center UI's APIs: a signed bearer token (a JWT, HS256) that names
the user (`sub`) and their role. Agents act on their own behalf; supervisors also shape routing
and act on any ticket.

Tokens are issued by whoever signs the UI's users in (an identity provider, or
`python -m router.tokens` with the same secret) and are checked here: signature, audience,
expiry (with a small leeway for clock skew), and a known role. The token itself never reaches a
log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, cast

import jwt

Role = Literal["agent", "supervisor"]
ROLES: tuple[Role, ...] = ("agent", "supervisor")
AUDIENCE = "contact-center"
LEEWAY_S = 30
_SUBJECT_MAX = 100


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


def issue_token(
    secret: bytes, subject: str, role: Role, *, ttl: timedelta, now: datetime | None = None
) -> str:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if not subject or len(subject) > _SUBJECT_MAX:
        raise ValueError("subject must be 1-100 characters")
    issued = now or datetime.now(UTC)
    claims = {
        "sub": subject,
        "role": role,
        "aud": AUDIENCE,
        "iat": int(issued.timestamp()),
        "exp": int((issued + ttl).timestamp()),
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def read_token(secret: bytes, token: str) -> Principal:
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],  # never "none", never what the token says it is
            audience=AUDIENCE,
            leeway=LEEWAY_S,
            options={"require": ["sub", "exp", "aud"]},
        )
    except jwt.ExpiredSignatureError:
        raise InvalidCredentials("the token has expired") from None
    except jwt.PyJWTError:
        raise InvalidCredentials("the token is not valid") from None
    role, subject = claims.get("role"), claims.get("sub")
    if role not in ROLES:
        raise InvalidCredentials("the token has no known role")
    if not isinstance(subject, str) or not subject or len(subject) > _SUBJECT_MAX:
        raise InvalidCredentials("the token names no user")
    return Principal(subject=subject, role=cast(Role, role))
