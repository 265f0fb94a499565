"""Intake at the HTTP edge: accepted contacts per second and p50/p99 latency under wrk, beside
the same load on a bare FastAPI endpoint that only validates the request model (the ceiling).

Both servers run the same number of uvicorn workers. Every request posts a new contact (unique
channel id), half from returning customers, over the four channels. Intake authenticates the key,
identifies the customer, enforces idempotency and commits the contact, its customer link and its
outbox row before each 202; afterwards the stored rows are counted against the 202s.
"""

from __future__ import annotations

import asyncio
import os

import asyncpg

from bench.harness import (
    KAFKA,
    ROOT,
    database_url,
    recreate_database,
    start_uvicorn,
    write_result,
    wrk,
)

DB = "bench_intake"
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "64"))
SCRIPT = ROOT / "bench" / "contacts.lua"


async def _create_key() -> str:
    from intake.db.api_keys import create_key

    conn = await asyncpg.connect(database_url(DB).replace("+asyncpg", ""))
    try:
        _, key = await create_key(
            conn,
            name="bench",
            channels=["phone", "email", "chat", "social"],
            rate_per_s=1e9,
            burst=1_000_000_000,
        )
        return key
    finally:
        await conn.close()


async def _count_contacts() -> int:
    conn = await asyncpg.connect(database_url(DB).replace("+asyncpg", ""))
    try:
        return int(await conn.fetchval("SELECT count(*) FROM contacts"))
    finally:
        await conn.close()


def _load(name: str, port: int, seconds: int, key: str) -> dict[str, float]:
    url = f"http://127.0.0.1:{port}"
    env = {"CC_BENCH_KEY": key}
    wrk(url, SCRIPT, seconds=3, connections=CONNECTIONS, threads=2, env=env)  # warm-up
    return wrk(url, SCRIPT, seconds=seconds, connections=CONNECTIONS, threads=2, env=env)


def main(duration: int | None = None) -> None:
    seconds = duration or int(os.environ.get("BENCH_SECONDS", "15"))
    recreate_database(DB)
    env = {
        "INTAKE_DATABASE_URL": database_url(DB),
        "INTAKE_KAFKA_BOOTSTRAP": KAFKA,
        "INTAKE_WORKERS": str(WORKERS),
        "INTAKE_LOG_LEVEL": "WARNING",
    }
    ceiling = start_uvicorn("ceiling", "bench.ceiling_app:create_app", 18100, WORKERS, {}, "/docs")
    try:
        bare = _load("ceiling", 18100, seconds, "none")
    finally:
        ceiling.stop()

    intake = start_uvicorn("intake", "intake.app:create_app", 18001, WORKERS, env, "/readyz")
    try:
        key = asyncio.run(_create_key())
        cpu_before = intake.cpu_seconds()
        real = _load("intake", 18001, seconds, key)
        cpu = intake.cpu_seconds() - cpu_before
        rss = intake.rss_mb()
    finally:
        intake.stop()
    stored = asyncio.run(_count_contacts())

    ratio = real["ok_per_s"] / bare["ok_per_s"] if bare["ok_per_s"] else 0.0
    result = {
        "load_generator": f"wrk 4.1, 2 threads, {CONNECTIONS} connections, {seconds} s "
        "(after a 3 s warm-up), on the same machine",
        "workers": WORKERS,
        "ceiling": bare,
        "intake": real,
        "ratio_to_ceiling": round(ratio, 3),
        "intake_cpu_s_per_1k": round(1000 * cpu / max(1, real["requests"] + 1), 3),
        "intake_rss_mb": round(rss, 1),
        "stored_contacts": stored,
        "target": "intake >= 60% of the ceiling, p99 < 100 ms",
        "target_met": ratio >= 0.6 and real["p99_us"] < 100_000,
    }
    path = write_result("intake", result)
    print(f"\nintake benchmark ({WORKERS} workers each, {CONNECTIONS} connections, {seconds} s)")
    print(f"{'':<10}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}")
    for label, r in (("ceiling", bare), ("intake", real)):
        print(
            f"{label:<10}{r['ok_per_s']:>10.0f}{r['p50_us'] / 1000:>9.1f}"
            f"{r['p99_us'] / 1000:>9.1f}{r['non_2xx']:>9}"
        )
    print(
        f"ratio {ratio:.0%} of the ceiling; {stored} contacts stored for {real['ok']} 202s "
        f"(+ warm-up); target met: {result['target_met']}; written to {path}"
    )
