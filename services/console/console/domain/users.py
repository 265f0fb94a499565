"""The console's users: who they are, what they may do, how their passwords are kept."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

Role = Literal["agent", "supervisor"]
Language = Literal["en", "zh"]
USER_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
PASSWORD_MIN = 12
PASSWORD_MAX = 1024

# argon2id with RFC 9106's second recommended profile (64 MiB, 3 passes, 4 lanes): about
# 50-100 ms a hash on this project's machines, paid once per sign-in, never per request.
_HASHER = PasswordHasher(time_cost=3, memory_cost=64 * 1024, parallelism=4)
# A hash to verify against when the account does not exist, so a sign-in for an unknown
# name costs the same time as one for a known name (no account enumeration by timing).
_DUMMY_HASH = _HASHER.hash("not a real password, only spends the time of a check")


@dataclass(frozen=True)
class User:
    id: str
    display_name: str
    role: Role
    agent_id: str | None  # the router agent an agent user works as
    language: Language | None

    @property
    def subject(self) -> str:
        """The API token's subject: the agent's id for agents, the user's own for supervisors."""
        return self.agent_id if self.role == "agent" and self.agent_id else self.id

    @property
    def is_supervisor(self) -> bool:
        return self.role == "supervisor"


class WeakPassword(ValueError):
    """A password the console will not store."""


def check_new_password(password: str, user_id: str) -> None:
    """WeakPassword unless the password is long enough and not the user's name."""
    if len(password) < PASSWORD_MIN:
        raise WeakPassword(f"must be at least {PASSWORD_MIN} characters")
    if len(password) > PASSWORD_MAX:
        raise WeakPassword(f"must be at most {PASSWORD_MAX} characters")
    if user_id.lower() in password.lower() and len(password) < 2 * len(user_id) + PASSWORD_MIN:
        raise WeakPassword("must not be built on the user's name")


def hash_password(password: str) -> str:
    """The argon2id hash (PHC string, with its salt and parameters) to store."""
    return _HASHER.hash(password)


def password_matches(stored_hash: str | None, password: str) -> bool:
    """Whether `password` is the one `stored_hash` was made from; with no hash (no such user),
    the same work is done against a dummy so the answer takes as long, and is False."""
    if len(password) > PASSWORD_MAX:
        return False
    try:
        return _HASHER.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """True when the hash was made with weaker parameters than today's (rehash at sign-in)."""
    return _HASHER.check_needs_rehash(stored_hash)
