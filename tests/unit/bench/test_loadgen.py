"""The benchmarks' HTTP load generator against a local server that answers every request."""

from __future__ import annotations

import asyncio
import contextlib
import re
from pathlib import Path

import pytest

from bench.loadgen import RawHttpClient

ROOT = Path(__file__).resolve().parents[3]
_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            writer.write(_ANSWER)
    writer.close()


async def test_closing_256_idle_connections_takes_a_few_loop_turns_not_two_each() -> None:
    """Closing one at a time (close, then wait_closed) took about two loop turns a connection:
    on a busy machine minutes, while the benchmark's window kept running."""
    server = await asyncio.start_server(_serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    turns = 0

    async def count_turns() -> None:
        nonlocal turns
        while True:
            await asyncio.sleep(0)
            turns += 1

    try:
        async with contextlib.AsyncExitStack() as stack:
            client = await stack.enter_async_context(
                RawHttpClient("127.0.0.1", port, connections=256)
            )
            answers = await asyncio.gather(*(client.post("/", {"n": n}) for n in range(256)))
            assert {a.status for a in answers} == {200}
            assert client.open_connections() == 256
            counter = asyncio.create_task(count_turns())
            await asyncio.sleep(0)
            turns = 0
        closing_turns = turns  # __aexit__ ran at the end of the `async with`
        counter.cancel()
        assert client.open_connections() == 0
        assert closing_turns < 32, closing_turns
    finally:
        server.close()
        await server.wait_closed()


async def test_httpcore_finds_sniffio_instead_of_retrying_a_failing_import(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """httpcore imports sniffio on every lock or cancel scope; without it (anyio >= 4.11 no
    longer brings it) each of those imports fails anew, searching sys.path: about 8 % of the
    load generator's time, and the same in any service using httpx. The answer must come from
    sniffio, not from httpcore's ImportError fallback."""
    import httpcore._synchronization as sync
    import sniffio

    asked: list[str] = []
    real = sniffio.current_async_library

    def spy() -> str:
        asked.append(real())
        return asked[-1]

    monkeypatch.setattr(sniffio, "current_async_library", spy)
    assert sync.current_async_library() == "asyncio"
    assert asked == ["asyncio"]
    lock = (ROOT / "requirements.lock").read_text()
    assert re.search(r"^sniffio==", lock, re.MULTILINE)


async def test_a_kept_alive_connection_the_server_closed_while_idle_is_replaced_not_failed() -> (
    None
):
    """uvicorn closes a connection idle for 5 s; the next request on it got no answer and was
    counted as a failed post (44 of 300 at 20 contacts/s)."""

    async def one_answer_then_close(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
        writer.write(_ANSWER)
        await writer.drain()
        writer.close()  # keep-alive timeout: closed without a word

    server = await asyncio.start_server(one_answer_then_close, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with RawHttpClient("127.0.0.1", port, connections=1) as client:
            assert (await client.post("/", {"n": 1})).status == 200
            await asyncio.sleep(0.05)  # the server's FIN arrives
            assert (await client.post("/", {"n": 2})).status == 200
    finally:
        server.close()
        await server.wait_closed()


async def test_a_new_connection_closed_without_an_answer_fails_the_request() -> None:
    async def hang_up(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with RawHttpClient("127.0.0.1", port, connections=1) as client:
            with pytest.raises((asyncio.IncompleteReadError, ConnectionError)):
                await client.post("/", {"n": 1})
    finally:
        server.close()
        await server.wait_closed()


async def test_a_get_carries_the_per_request_headers_beside_the_clients_and_no_body() -> None:
    """The agents share one client, each with its own token."""
    seen: list[bytes] = []

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                seen.append(head)
                writer.write(_ANSWER)
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with RawHttpClient("127.0.0.1", port, headers={"X-Run": "r1"}) as client:
            response = await client.request("GET", "/offers", headers={"Authorization": "B a1"})
            assert response.json() == {}
            await client.request("GET", "/offers", headers={"Authorization": "B a2"})
    finally:
        server.close()
        await server.wait_closed()
    first, second = (h.decode().split("\r\n") for h in seen)
    assert first[0] == "GET /offers HTTP/1.1"
    assert {"X-Run: r1", "Authorization: B a1", "Content-Length: 0"} <= set(first)
    assert "Authorization: B a2" in second
    assert "Authorization: B a1" not in second
