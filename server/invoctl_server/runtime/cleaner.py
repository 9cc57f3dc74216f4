"""The retention cleaner: completed invocations are deleted once their service's retention
(default 24 h) has passed, in batches, safely with N servers (SKIP LOCKED)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import asyncpg

from ..store import db, operations

log = logging.getLogger("invoctl.cleaner")


class Cleaner:
    def __init__(
        self, pool: asyncpg.Pool, *, poll_interval: float, actor: str, batch: int = 1000
    ) -> None:
        self._pool = pool
        self._poll = poll_interval
        self._batch = batch
        self._actor = actor
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="invoctl-cleaner")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                while await self._tick() == self._batch:
                    pass  # a full batch: there may be more right away
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("retention clean-up failed; retrying")
            await asyncio.sleep(self._poll)  # the poll period of a background loop

    async def _tick(self) -> int:
        return await db.transaction(
            self._pool,
            lambda conn: operations.invocations_expire(
                conn, limit=self._batch, actor=self._actor, now=datetime.now(UTC)
            ),
        )
