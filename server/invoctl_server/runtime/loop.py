"""What every background loop of the server shares: one task, started and cancelled."""

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
