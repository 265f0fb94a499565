"""Liveness and readiness: `/healthz` says the process runs, `/readyz` that it can do its job."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ccshared.kafka import PLAINTEXT, KafkaSecurity, kafka_reachable
from ccshared.problems import PROBLEM_BASE, PROBLEM_JSON

Check = Callable[[], Awaitable[bool]]


def database_check(engine: AsyncEngine, timeout_s: float = 2.0) -> Check:
    async def check() -> bool:
        try:
            async with asyncio.timeout(timeout_s), engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            return True
        except Exception:  # noqa: BLE001 - any failure means not ready
            return False

    return check


def kafka_check(bootstrap: str, security: KafkaSecurity = PLAINTEXT) -> Check:
    async def check() -> bool:
        return await kafka_reachable(bootstrap, security=security)

    return check


class Readiness:
    """Runs the checks at most once per `ttl_s` while they pass, so probes cannot overload the
    dependencies; a failing result is not cached, so recovery shows at the next probe."""

    def __init__(self, checks: dict[str, Check], ttl_s: float = 2.0) -> None:
        self.checks = checks
        self.ttl_s = ttl_s
        self._last: tuple[float, dict[str, bool]] | None = None
        self._lock = asyncio.Lock()
        self.shutting_down = False

    async def results(self) -> dict[str, bool]:
        async with self._lock:
            now = time.monotonic()
            if self._last is not None and now - self._last[0] <= self.ttl_s:
                return dict(self._last[1])
            names = list(self.checks)
            values = await asyncio.gather(*(self.checks[n]() for n in names))
            results = dict(zip(names, values, strict=True))
            self._last = (now, results) if all(values) else None
            return dict(results)


def health_router(readiness: Readiness, service: str) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="Liveness: the process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @router.get(
        "/readyz",
        summary="Readiness: the database and Kafka are reachable",
        responses={503: {"description": "Not ready; the problem body lists the failing checks"}},
    )
    async def readyz() -> JSONResponse:
        checks = await readiness.results()
        if readiness.shutting_down:
            checks["shutting_down"] = False
        if all(checks.values()):
            return JSONResponse({"status": "ready", "service": service, "checks": checks})
        failing = sorted(name for name, ok in checks.items() if not ok)
        return JSONResponse(
            {
                "type": PROBLEM_BASE + "not-ready",
                "title": "Service Unavailable",
                "status": 503,
                "detail": "Not ready: " + ", ".join(failing),
                "checks": checks,
            },
            status_code=503,
            media_type=PROBLEM_JSON,
        )

    return router
