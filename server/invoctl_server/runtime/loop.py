"""What every background loop of the server shares: one task, started and cancelled, and
its wait for a wake-up or the next poll."""

from __future__ import annotations

import asyncio


class Loop:
    """A background task: `start()` runs `_run()` (named invoctl-`task_name`) until
    `stop()` cancels it."""

    task_name = "loop"
    _task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"invoctl-{self.task_name}")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        raise NotImplementedError


async def woken(event: asyncio.Event, timeout: float) -> bool:
    """Wait until `event` is set (True) or `timeout` seconds pass (False).

    Not asyncio.wait_for(event.wait(), timeout): on Python 3.11 it returns the result and
    drops a cancellation that comes in the same turn of the event loop as the event (a
    wake-up while the server stops), and the loop it was meant to end runs on."""
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True
