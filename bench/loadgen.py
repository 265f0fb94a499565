"""An open-loop HTTP/1.1 load generator for the benchmarks that need each request's own send
time (to follow it through Kafka), which wrk cannot give.

httpx tops out at about 150 requests/s on this machine, so the benchmarks' POST→event latency
was mostly the client's own queue. This client keeps plain keep-alive connections (asyncio
streams, no HTTP library), writes each request as prebuilt bytes and reads the response by its
Content-Length: a few thousand requests/s on one core. A request's clock starts when it is
handed to the pool, so a saturated client shows up in the figures instead of hiding.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass
class Response:
    status: int
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter


@dataclass
class RawHttpClient:
    """`connections` keep-alive connections to host:port; `post` takes a free one (waiting
    if none is), sends the request and reads the answer."""

    host: str
    port: int
    headers: dict[str, str] = field(default_factory=dict)
    connections: int = 32
    _idle: asyncio.Queue[_Connection | None] = field(init=False)
    _opened: list[_Connection] = field(init=False, default_factory=list)

    async def __aenter__(self) -> RawHttpClient:
        self._idle = asyncio.Queue()
        for _ in range(self.connections):
            self._idle.put_nowait(None)  # opened on first use
        return self

    async def __aexit__(self, *_: object) -> None:
        """Close every idle connection at once: `close` on each (no loop turn), then one wait
        for all of them, bounded. Closing them one by one took about two loop turns each, so
        on a busy machine 256 connections took minutes while the agents kept working and the
        measured window stretched."""
        writers = []
        while not self._idle.empty():
            conn = self._idle.get_nowait()
            if conn is not None:
                conn.writer.close()
                writers.append(conn.writer)
        if writers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*(w.wait_closed() for w in writers), return_exceptions=True),
                    timeout=5,
                )

    def open_connections(self) -> int:
        """Connections opened and not yet closed."""
        self._opened = [c for c in self._opened if not c.writer.is_closing()]
        return len(self._opened)

    def _request(
        self, method: str, path: str, body: bytes, headers: dict[str, str] | None
    ) -> bytes:
        lines = [
            f"{method} {path} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            *(f"{k}: {v}" for k, v in (self.headers | (headers or {})).items()),
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    async def post(self, path: str, json: object) -> Response:
        return await self.request("POST", path, json)

    async def request(
        self,
        method: str,
        path: str,
        json: object = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """`method` on `path` with `json` as the body (none when None) and `headers` beside
        the client's."""
        request = self._request(method, path, b"" if json is None else orjson.dumps(json), headers)
        conn = await self._idle.get()
        keep: _Connection | None = None
        try:
            try:
                response, keep = await self._exchange(conn, request)
            except (ConnectionError, asyncio.IncompleteReadError) as error:
                # A kept-alive connection the server closed while it was idle (uvicorn after
                # 5 s): nothing of an answer came, so the request is sent again on a new one,
                # as HTTP clients do. A failure on a new connection is the server's and counts.
                partial = error.partial if isinstance(error, asyncio.IncompleteReadError) else b""
                if conn is None or partial:
                    raise
                response, keep = await self._exchange(None, request)
            return response
        finally:
            self._idle.put_nowait(keep)

    async def _exchange(
        self, conn: _Connection | None, request: bytes
    ) -> tuple[Response, _Connection | None]:
        """One request and its answer, and the connection if it stays open."""
        try:
            if conn is None:
                reader, writer = await asyncio.open_connection(self.host, self.port)
                conn = _Connection(reader, writer)
                self._opened.append(conn)
            conn.writer.write(request)
            head = await conn.reader.readuntil(b"\r\n\r\n")
            status_line, *header_lines = head.decode("latin-1").split("\r\n")
            status = int(status_line.split(" ", 2)[1])
            length = 0
            keep_alive = True
            for line in header_lines:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value)
                elif name == "connection" and value.strip().lower() == "close":
                    keep_alive = False
            payload = await conn.reader.readexactly(length) if length else b""
            if not keep_alive:
                conn.writer.close()
            return Response(status, payload), conn if keep_alive else None
        except BaseException:
            if conn is not None:
                conn.writer.close()
            raise


async def open_loop(
    rate: float, count: int, send: Callable[[int, float], Coroutine[Any, Any, None]]
) -> float:
    """Start `send(n, started)` for n in 0..count-1 at `rate` per second whatever the answers
    take (open loop: a slow server gets more concurrent requests, not fewer); `started` is the
    request's scheduled start on `time.perf_counter()`. Returns how far behind schedule the
    last start was, in seconds (0: the generator kept up)."""
    tasks: list[asyncio.Task[None]] = []
    t0 = time.perf_counter()
    lag = 0.0
    for n in range(count):
        due = t0 + n / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            lag = -delay
        tasks.append(asyncio.create_task(send(n, due)))
    await asyncio.gather(*tasks)
    return lag
