"""An address shut out by its failed key attempts (REVIEW15 finding 2): its bad keys get 429
without costing a query, but a key that verifies still gets in, since behind an ingress every
integration shares one address; IPv6 addresses are counted per /64."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from ccshared.problems import Problem
from intake.api.auth import RateLimited, Unauthorized, authenticate_headers
from intake.db.api_keys import ApiKeyVerifier
from intake.domain.api_keys import hash_secret, throttled_address

PREFIX = "0123456789ab"
SECRET = "victim-secret"
VALID = f"cck_{PREFIX}_{SECRET}"
INGRESS = "10.0.0.7"


class _Keys:
    """The api_keys table with one key; failures are counted in memory only."""

    def __init__(self) -> None:
        self.lookups = 0

    async def fetchrow(self, sql: str, *args: Any) -> dict[str, Any] | None:
        if "auth_failures" in sql:
            raise OSError("counted in this process only")
        self.lookups += 1
        if args[0] != PREFIX:
            return None
        return {
            "id": uuid.uuid4(),
            "name": "victim",
            "integration_id": uuid.uuid4(),
            "prefix": PREFIX,
            "channels": ["chat"],
            "rate_per_s": 100.0,
            "burst": 100,
            "created_at": datetime.now(UTC),
            "revoked_at": None,
            "secret_hash": hash_secret(SECRET),
            "phone_region": None,
        }

    async def execute(self, *args: Any) -> None:
        raise OSError("counted in this process only")


def _verifier(keys: _Keys) -> ApiKeyVerifier:
    verifier = ApiKeyVerifier(keys, ttl_s=10, failure_limit=20)  # type: ignore[arg-type]
    verifier.rates.try_take = lambda key: True  # type: ignore[method-assign]
    return verifier


async def _status(verifier: ApiKeyVerifier, key: str | None, client: str = INGRESS) -> int:
    headers = {"authorization": f"Bearer {key}"} if key is not None else {}
    try:
        await authenticate_headers(headers, verifier, client)
    except Problem as problem:
        return problem.status
    return 200


async def _shut_out(verifier: ApiKeyVerifier, client: str = INGRESS) -> None:
    assert [await _status(verifier, "cck_garbage", client) for _ in range(20)] == [401] * 20
    assert await _status(verifier, "cck_garbage", client) == 429


@pytest.mark.parametrize("seen_before", [True, False])
async def test_a_valid_key_gets_in_from_an_address_shut_out_by_others_garbage(
    seen_before: bool,
) -> None:
    verifier = _verifier(_Keys())
    if seen_before:
        assert await _status(verifier, VALID) == 200
    await _shut_out(verifier)
    assert await _status(verifier, VALID) == 200


@pytest.mark.parametrize(
    "presented", [None, "nonsense", f"cck_{PREFIX}_wrong-secret", "cck_ffffffffffff_guess"]
)
async def test_a_shut_out_address_gets_429_for_every_bad_key(presented: str | None) -> None:
    verifier = _verifier(_Keys())
    await _shut_out(verifier)
    with pytest.raises(RateLimited) as raised:
        await authenticate_headers(
            {"authorization": f"Bearer {presented}"} if presented else {}, verifier, INGRESS
        )
    assert 1 <= int(raised.value.headers["Retry-After"]) <= 60


async def test_a_shut_out_address_costs_no_query_for_malformed_or_known_unknown_keys() -> None:
    keys = _Keys()
    verifier = _verifier(keys)
    await _shut_out(verifier)  # cck_garbage is malformed: never looked up
    assert keys.lookups == 0
    assert await _status(verifier, "cck_ffffffffffff_guess") == 429
    assert keys.lookups == 1
    assert [await _status(verifier, "cck_ffffffffffff_guess") for _ in range(50)] == [429] * 50
    assert keys.lookups == 1  # remembered as unknown


async def test_a_shut_out_address_cannot_make_a_query_per_request_with_new_prefixes() -> None:
    keys = _Keys()
    verifier = _verifier(keys)
    await _shut_out(verifier)
    codes = [await _status(verifier, f"cck_{i:012x}_guess") for i in range(1, 201)]
    assert codes == [429] * 200
    assert keys.lookups <= 12  # the lookup budget's burst (and what refilled meanwhile)


async def test_an_unthrottled_address_still_gets_401_and_the_valid_key_200() -> None:
    verifier = _verifier(_Keys())
    await _shut_out(verifier, "203.0.113.7")
    assert await _status(verifier, "cck_garbage", "198.51.100.9") == 401
    assert await _status(verifier, f"cck_{PREFIX}_wrong", "198.51.100.9") == 401
    assert await _status(verifier, VALID, "198.51.100.9") == 200


async def test_ipv6_failures_count_per_64() -> None:
    verifier = _verifier(_Keys())
    for i in range(20):
        with pytest.raises(Unauthorized):
            await authenticate_headers(
                {"authorization": "Bearer cck_garbage"}, verifier, f"2001:db8::{i + 1:x}"
            )
    assert await _status(verifier, "cck_garbage", "2001:db8::beef:1") == 429
    assert await _status(verifier, "cck_garbage", "2001:db8:0:1::1") == 401


@pytest.mark.parametrize(
    ("address", "counted_as"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8::1", "2001:db8::/64"),
        ("2001:db8::ffff:1:2:3", "2001:db8::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("not-an-address", "not-an-address"),
    ],
)
def test_the_unit_of_counting(address: str, counted_as: str) -> None:
    assert throttled_address(address) == counted_as
