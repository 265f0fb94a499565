"""Who is calling: the integration's API key, its channel scope and its rate limit, and the
throttling of client addresses that keep presenting bad keys."""

from __future__ import annotations

import math
from collections.abc import Mapping

import asyncpg
from fastapi import Request

from ccshared.problems import Problem
from intake.api.deps import parts
from intake.db.api_keys import ApiKey, ApiKeyVerifier


class Unauthorized(Problem):
    status = 401
    slug = "unauthorized"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="intake"'})


class Forbidden(Problem):
    status = 403
    slug = "forbidden"


class KeysUnavailable(Problem):
    """The key could not be checked (its database is unreachable): retry, not the caller's fault."""

    status = 503
    slug = "unavailable"


class RateLimited(Problem):
    status = 429
    slug = "rate-limited"


async def authenticate(request: Request) -> ApiKey:
    """The caller's active key, within its rate limit."""
    client = request.client.host if request.client else None
    return await authenticate_headers(request.headers, parts(request).verifier, client)


async def authenticate_headers(
    headers: Mapping[str, str], verifier: ApiKeyVerifier, client: str | None = None
) -> ApiKey:
    """Read by hand rather than through FastAPI's security dependencies: this runs on every
    request of the hot path. `client` is the caller's address (None: not throttled)."""
    presented = None
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "bearer":
            presented = credentials.strip()
    else:
        presented = headers.get("x-api-key")
    shut_out = verifier.failures.retry_after(client)
    try:
        if shut_out > 0:
            # The address has failed too often: its bad keys get 429 (no 401, no count, and
            # mostly no query: `verify_shut_out`), but a key that verifies still gets in, so
            # that a neighbour's garbage (or everyone's, behind one proxy) locks nobody out.
            key = await verifier.verify_shut_out(presented)
            if key is None:
                raise RateLimited(
                    "Too many requests with a missing or invalid API key from this address; "
                    "retry after the time given.",
                    headers={"Retry-After": str(max(1, math.ceil(shut_out)))},
                )
        elif not presented:
            key = None
        else:
            key = await verifier.verify(presented)
        if key is None or verifier.rates.try_take(key):
            wait = 0.0
        else:  # this process's leased tokens are spent: lease more, or wait
            wait = await verifier.rates.retry_after(key)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        # Found by `make chaos`: with PostgreSQL down, a key whose cache entry had expired made
        # POST /v1/contacts answer 500.
        raise KeysUnavailable(
            "The API key could not be checked right now; nothing was kept, retry shortly.",
            headers={"Retry-After": "1"},
        ) from exc
    if key is None:
        await verifier.failures.record(client)
        if not presented:
            raise Unauthorized("An API key is required: send `Authorization: Bearer <key>`.")
        raise Unauthorized("The API key is unknown, malformed or revoked.")
    if wait > 0:
        seconds = max(1, math.ceil(wait))
        raise RateLimited(
            f"The rate limit of key {key.prefix} ({key.rate_per_s:g}/s) is exhausted.",
            headers={"Retry-After": str(seconds)},
        )
    return key


# How the keys appear in the OpenAPI document.
SECURITY_SCHEMES = {
    "IntegrationKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "The integration's API key: `Authorization: Bearer cck_...`",
    },
    "IntegrationKeyHeader": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "The same key in the X-API-Key header",
    },
}
SECURITY: list[dict[str, list[str]]] = [{"IntegrationKey": []}, {"IntegrationKeyHeader": []}]


def require_channel(key: ApiKey, channel: str) -> None:
    if channel not in key.channels:
        raise Forbidden(
            f"Key {key.prefix} may post {', '.join(sorted(key.channels))} contacts, not {channel}.",
            extra={"channel": channel, "allowed_channels": sorted(key.channels)},
        )
