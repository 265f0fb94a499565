"""With PostgreSQL unreachable, a key that has to be looked up is a 503 to retry, not a 500.

Found by `make chaos`: after the key cache expired during the PostgreSQL outage, POST
/v1/contacts answered 500 (an unhandled ConnectionRefusedError / CannotConnectNowError).
"""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from intake.api.auth import KeysUnavailable, Unauthorized, authenticate_headers
from intake.db.api_keys import ApiKeyVerifier


class _Pool:
    def __init__(self, error: BaseException | None) -> None:
        self.error = error

    async def fetchrow(self, *args: Any) -> None:
        if self.error is not None:
            raise self.error


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "Connection refused"),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
    ],
)
async def test_an_unreachable_database_is_a_503_with_retry_after(error: BaseException) -> None:
    verifier = ApiKeyVerifier(_Pool(error), ttl_s=10)  # type: ignore[arg-type]
    with pytest.raises(KeysUnavailable) as raised:
        await authenticate_headers({"authorization": "Bearer cck_abcdef123456_secret"}, verifier)
    assert raised.value.status == 503
    assert raised.value.headers == {"Retry-After": "1"}


async def test_an_unknown_key_is_still_a_401() -> None:
    verifier = ApiKeyVerifier(_Pool(None), ttl_s=10)  # type: ignore[arg-type]
    with pytest.raises(Unauthorized):
        await authenticate_headers({"authorization": "Bearer cck_abcdef123456_secret"}, verifier)
