"""The pure parts of intake's limits: lease blocks, leased tokens, failed-attempt windows."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from intake.domain.api_keys import FailedAttempts, LeasedTokens, lease_block


@pytest.mark.parametrize(
    ("rate", "burst", "lease_s", "block"),
    [(200, 400, 0.1, 20), (0.5, 2, 0.1, 1), (1e9, 10**9, 0.1, 10**6), (1000, 5, 0.1, 5)],
)
def test_a_block_is_the_rate_over_the_lease_time_within_one_and_the_burst(
    rate: float, burst: int, lease_s: float, block: int
) -> None:
    assert lease_block(rate, burst, lease_s) == block


@given(st.floats(0.001, 1e9), st.integers(1, 10**9), st.floats(0.001, 10))
def test_a_block_is_never_empty_nor_above_the_burst(rate: float, burst: int, lease: float) -> None:
    assert 1 <= lease_block(rate, burst, lease) <= burst


def test_leased_tokens_are_spent_one_by_one_then_the_process_must_lease_again() -> None:
    leased = LeasedTokens()
    leased.granted(2, 5.0, 10.0, now=100.0)
    assert [leased.take() for _ in range(3)] == [True, True, False]
    assert leased.denied_until == 0.0


def test_an_empty_shared_bucket_means_no_lease_until_a_token_is_refilled() -> None:
    leased = LeasedTokens()
    leased.granted(0, 0.25, 0.5, now=100.0)
    assert leased.denied_until == pytest.approx(101.5)  # 0.75 token at 0.5/s
    assert not leased.take()


def test_an_address_is_shut_out_at_the_limit_until_its_window_ends() -> None:
    failures = FailedAttempts(limit=3, window_s=60)
    for second in (0.0, 1.0):
        failures.record("203.0.113.7", second)
    assert failures.retry_after("203.0.113.7", 2.0) == 0.0
    failures.record("203.0.113.7", 2.0)
    assert failures.retry_after("203.0.113.7", 2.0) == pytest.approx(58.0)
    assert failures.retry_after("198.51.100.9", 2.0) == 0.0
    assert failures.retry_after("203.0.113.7", 60.0) == 0.0


def test_failures_of_a_past_window_do_not_count() -> None:
    failures = FailedAttempts(limit=2, window_s=10)
    failures.record("a", 0.0)
    failures.record("a", 11.0)
    assert failures.retry_after("a", 11.0) == 0.0


def test_memory_stays_bounded_under_many_addresses() -> None:
    failures = FailedAttempts(limit=1, window_s=10, max_addresses=100)
    for n in range(10_000):
        failures.record(f"10.0.{n // 256}.{n % 256}", n / 1000)
    assert len(failures._counts) <= 100
    assert len(failures._blocked) <= 100
    assert failures.retry_after("10.0.39.15", 10.0) > 0  # the latest are still shut out
