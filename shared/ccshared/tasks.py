"""Stopping a service's background loops (relay, consumers, scanners, schedulers)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def finish_or_cancel(task: asyncio.Task[Any] | None, grace_s: float) -> None:
    """Let the task finish what it is doing within `grace_s` (it has been told to stop), else
    cancel it. A task that is already done or cancelled is left alone: stopping twice is
    harmless."""
    if task is None or task.done():
        return
    try:
        await asyncio.wait_for(asyncio.shield(task), timeout=grace_s)
    except TimeoutError:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
