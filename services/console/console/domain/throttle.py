"""Sign-in throttling: how many failures an account and a client address may have in a window."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ThrottleLimits:
    window_s: float
    per_account: int
    per_address: int


def sign_in_refused(limits: ThrottleLimits, account_failures: int, address_failures: int) -> bool:
    """True when the account or the address already failed as often as the window allows: the
    attempt is refused before the password is even checked (guessing gains nothing)."""
    return account_failures >= limits.per_account or address_failures >= limits.per_address
