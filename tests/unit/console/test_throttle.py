"""Sign-in throttling (console.domain.throttle): refused once the account or the address has
failed as often as the window allows, before any password is checked."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from console.domain.throttle import ThrottleLimits, sign_in_refused

LIMITS = ThrottleLimits(window_s=900, per_account=5, per_address=20)


def test_an_account_below_its_limit_may_try_and_at_its_limit_may_not() -> None:
    assert not sign_in_refused(LIMITS, account_failures=4, address_failures=0)
    assert sign_in_refused(LIMITS, account_failures=5, address_failures=0)


def test_an_address_at_its_limit_is_refused_for_every_account() -> None:
    assert not sign_in_refused(LIMITS, account_failures=0, address_failures=19)
    assert sign_in_refused(LIMITS, account_failures=0, address_failures=20)


@given(st.integers(0, 100), st.integers(0, 100))
def test_refused_exactly_when_either_count_reached_its_limit(account: int, address: int) -> None:
    assert sign_in_refused(LIMITS, account, address) == (account >= 5 or address >= 20)
