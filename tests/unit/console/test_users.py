"""The console's passwords (console.domain.users): what it refuses to store, argon2id checks
that say no to a wrong password, an unknown user and a damaged hash alike, and rehashing when
the parameters were weaker."""

from __future__ import annotations

import time

import pytest
from argon2 import PasswordHasher

from console.domain.users import (
    PASSWORD_MAX,
    PASSWORD_MIN,
    User,
    WeakPassword,
    check_new_password,
    hash_password,
    needs_rehash,
    password_matches,
)

GOOD = "correct horse battery staple"


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("x" * (PASSWORD_MIN - 1), "at least"),
        ("x" * (PASSWORD_MAX + 1), "at most"),
        ("amy.chen1234", "user's name"),
        ("AMY.CHEN-2026!", "user's name"),  # whatever the case
    ],
)
def test_a_short_long_or_name_based_password_is_refused(password: str, why: str) -> None:
    with pytest.raises(WeakPassword, match=why):
        check_new_password(password, "amy.chen")


def test_a_long_enough_password_is_taken_even_if_it_holds_a_short_name() -> None:
    check_new_password("x" * PASSWORD_MIN, "amy")
    check_new_password(GOOD, "bob")
    check_new_password("amy " + "plus twelve and more words", "amy")  # long beyond the name


def test_the_stored_hash_is_argon2id_salted_and_never_the_password() -> None:
    first, second = hash_password(GOOD), hash_password(GOOD)
    assert first.startswith("$argon2id$")
    assert GOOD not in first
    assert first != second  # a salt of its own
    assert password_matches(first, GOOD)
    assert password_matches(second, GOOD)


def test_a_wrong_password_an_unknown_user_and_a_damaged_hash_do_not_match() -> None:
    stored = hash_password(GOOD)
    assert not password_matches(stored, GOOD + "!")
    assert not password_matches(stored, "")
    assert not password_matches(None, GOOD)  # no such user
    assert not password_matches("not-a-hash", GOOD)
    assert not password_matches(stored[:-4], GOOD)
    assert not password_matches(stored, "x" * (PASSWORD_MAX + 1))


def test_an_unknown_user_costs_a_hash_check_too() -> None:
    """No account enumeration by timing: the unknown name spends the same argon2 work."""
    stored = hash_password(GOOD)
    started = time.perf_counter()
    password_matches(stored, "wrong password here")
    known = time.perf_counter() - started
    started = time.perf_counter()
    password_matches(None, "wrong password here")
    unknown = time.perf_counter() - started
    assert unknown > known / 4


def test_a_hash_made_with_weaker_parameters_needs_a_rehash_and_still_matches() -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(GOOD)
    assert needs_rehash(weak)
    assert password_matches(weak, GOOD)
    assert not needs_rehash(hash_password(GOOD))


def test_an_agent_user_acts_as_its_router_agent_and_a_supervisor_as_itself() -> None:
    agent = User("amy.chen", "Amy Chen", "agent", "amy", None)
    supervisor = User("lin", "Lin Zhou", "supervisor", None, "zh")
    assert (agent.subject, agent.is_supervisor) == ("amy", False)
    assert (supervisor.subject, supervisor.is_supervisor) == ("lin", True)
