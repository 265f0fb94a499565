"""The end-to-end benchmark's load, one process per role, so that none of them measures another's
CPU shortage (`python -m bench.e2e_roles ROLE`; bench/e2e.py starts and drives them):

- `poster`: contacts posted to intake at a fixed rate (open loop), nothing else;
- `people`: the agents (offers, accept, reply, resolve) and the customers (survey answers), who
  learn of surveys from feedback's events through a consumer of their own;
- `tail`: the consumer timing every event of the four topics, alone.

Each reads commands from stdin and answers on stdout, one JSON object a line prefixed with
`@@` (anything else a library prints is ignored). Each measures its own CPU seconds and how late
its event loop wakes a 50 ms sleep (p50/p99/max), from `go` to its result: the run is marked
invalid when any of them lags more than 100 ms at p99, since then its timings measure itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from typing import Any

import orjson

from bench.harness import topic
from ccshared.events.catalog import FEEDBACK_EVENTS

PREFIX = b"@@"
LAG_LIMIT_MS = 100.0


def say(message: dict[str, Any]) -> None:
    sys.stdout.buffer.write(PREFIX + orjson.dumps(message) + b"\n")
    sys.stdout.buffer.flush()


async def commands() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**28)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def next_command(reader: asyncio.StreamReader) -> dict[str, Any]:
    line = await reader.readline()
    if not line:
        return {"cmd": "stop"}  # the driver went away
    command: dict[str, Any] = orjson.loads(line)
    return command


async def loop_lag(into: list[float]) -> None:
    """How late this process's event loop wakes a 50 ms sleep."""
    while True:
        began = time.perf_counter()
        await asyncio.sleep(0.05)
        into.append(time.perf_counter() - began - 0.05)


class Health:
    """A role's own CPU and loop lag, from `go` to its result."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self.cpu0 = time.process_time()
        self.task = asyncio.create_task(loop_lag(self.lags))

    def report(self) -> dict[str, Any]:
        from bench.e2e import _ms

        self.task.cancel()
        return {"cpu_s": round(time.process_time() - self.cpu0, 2), "loop_lag": _ms(self.lags)}


async def poster(reader: asyncio.StreamReader) -> None:
    from bench.e2e import Contacts, _open_loop

    say({"ready": True})
    go = await next_command(reader)
    health = Health()
    load = await _open_loop(
        go["url"], go["key"], Contacts(go["run"]), float(go["rate"]), float(go["seconds"])
    )
    load["new_threads"] = sorted(load["new_threads"])
    say({"result": load, "health": health.report()})


async def people(reader: asyncio.StreamReader) -> None:
    from bench.e2e import People, Tail

    surveys = Tail([topic(FEEDBACK_EVENTS)], survey_urls_only=True)
    await surveys.start()
    go = await next_command(reader)
    health = Health()
    crowd = People(go["router_url"], surveys, scenario=go["scenario"], agents=go["agents"])
    await crowd.start()
    say({"ready": True})
    try:
        while (await next_command(reader))["cmd"] != "stop":
            say({"in_progress": crowd.in_progress()})
        measured = health.report()  # the window measured, not the stopping
    finally:
        await crowd.stop()
        await surveys.stop()
    say({"result": {"resolved_at": crowd.resolved_at, "counts": crowd.counts}, "health": measured})


async def tail(reader: asyncio.StreamReader) -> None:
    from bench.e2e import TOPICS, Tail

    events = Tail(TOPICS)
    await events.start()
    say({"ready": True, "start_offsets": events.offsets()})
    go = await next_command(reader)
    health = Health()
    events.targets_s = {k: float(v) for k, v in go["policy"]["targets"].items()}
    events.warn_share = float(go["policy"]["warn_at_share"])
    watched: list[str] = []
    try:
        while (command := await next_command(reader))["cmd"] != "stop":
            watched = command.get("contacts", watched)
            say({"unassigned": events.unassigned(watched)})
        measured = health.report()
    finally:
        await events.stop()
    say({"result": events.result(), "health": measured})


ROLES = {"poster": poster, "people": people, "tail": tail}


async def main(role: str) -> None:
    reader = await commands()
    await ROLES[role](reader)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(sys.argv[1]))
