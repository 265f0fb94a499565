"""The end-to-end benchmark's load processes: the poster as its own process, and the rule that
marks a run invalid."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid
from typing import Any

import orjson

from bench.e2e import _ms, unhealthy_roles


async def _intake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accepts every contact, as intake does: 202 and the contact's id."""
    with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            body = orjson.dumps({"id": str(uuid.uuid4())})
            writer.write(
                b"HTTP/1.1 202 Accepted\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
            )
    writer.close()


async def _message(stdout: asyncio.StreamReader) -> dict[str, Any]:
    while True:
        line = await asyncio.wait_for(stdout.readline(), 60)
        assert line, "the poster process ended"
        if line.startswith(b"@@"):
            message: dict[str, Any] = orjson.loads(line[2:])
            return message


async def test_the_poster_posts_in_its_own_process_and_reports_its_cpu_and_loop_lag() -> None:
    server = await asyncio.start_server(_intake, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    poster = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.e2e_roles",
        "poster",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        limit=2**24,
    )
    assert poster.stdin is not None
    assert poster.stdout is not None
    try:
        assert (await _message(poster.stdout)) == {"ready": True}
        go = {"cmd": "go", "url": f"http://127.0.0.1:{port}", "key": "k", "run": "t"}
        poster.stdin.write(orjson.dumps(go | {"rate": 50, "seconds": 1}) + b"\n")
        done = await _message(poster.stdout)
        assert await asyncio.wait_for(poster.wait(), 30) == 0
    finally:
        if poster.returncode is None:
            poster.kill()
            await poster.wait()
        server.close()
        await server.wait_closed()
    assert done["result"]["statuses"] == {"202": 50}
    assert len(done["result"]["sent"]) == 50
    assert set(done["health"]) == {"cpu_s", "loop_lag"}
    assert done["health"]["loop_lag"]["n"] > 0


def test_a_run_is_invalid_when_any_load_process_lags_over_100_ms_at_p99() -> None:
    healthy = {"cpu_s": 1.0, "loop_lag": _ms([0.001] * 100)}
    late = {"cpu_s": 1.0, "loop_lag": _ms([0.001] * 90 + [0.3] * 10)}
    assert unhealthy_roles({"poster": healthy, "people": healthy, "tail": healthy}) == []
    reasons = unhealthy_roles({"poster": healthy, "people": late, "tail": healthy})
    assert len(reasons) == 1
    assert reasons[0].startswith("people: event loop late by 300.0 ms at p99")
