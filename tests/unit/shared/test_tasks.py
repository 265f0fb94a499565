from __future__ import annotations

import asyncio

from ccshared.tasks import finish_or_cancel


def test_a_task_gets_its_grace_then_is_cancelled_and_stopping_twice_is_harmless() -> None:
    async def scenario() -> tuple[bool, bool, bool]:
        quick_done = asyncio.Event()

        async def quick() -> None:
            await asyncio.sleep(0.01)
            quick_done.set()

        async def stuck() -> None:
            await asyncio.sleep(3600)

        quick_task = asyncio.create_task(quick())
        await finish_or_cancel(quick_task, grace_s=1)
        stuck_task = asyncio.create_task(stuck())
        await finish_or_cancel(stuck_task, grace_s=0.01)
        await finish_or_cancel(stuck_task, grace_s=1)  # already cancelled: no error
        await finish_or_cancel(None, grace_s=1)
        return quick_done.is_set(), stuck_task.cancelled(), quick_task.cancelled()

    finished, cancelled, quick_cancelled = asyncio.run(scenario())
    assert finished
    assert cancelled
    assert not quick_cancelled
