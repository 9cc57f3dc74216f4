"""The timer loop: scheduled invocations, retries, sleeps and lapsed leases come due."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import asyncpg

from ..store import attempts, db
from .loop import Loop, woken

log = logging.getLogger("invoctl.timers")


class Timers(Loop):
    """Claims due rows with FOR UPDATE SKIP LOCKED in batches, so N servers share the work.

    Sleeps until the next due time (at most `poll_interval`), or until poked by this server
    after it set a near due time.
    """

    task_name = "timers"

    def __init__(
        self, pool: asyncpg.Pool, *, poll_interval: float, actor: str, batch: int = 500
    ) -> None:
        self._pool = pool
        self._poll = poll_interval
        self._batch = batch
        self._wake = asyncio.Event()
        self.actor = actor

    def poke(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            timeout = self._poll
            try:
                while await self._tick() == self._batch:
                    pass
                async with self._pool.acquire() as conn:
                    next_due = await attempts.due_next(conn)
                if next_due is not None:
                    ahead = (next_due - datetime.now(UTC)).total_seconds()
                    # Rows due but locked by another server: look again shortly, do not spin.
                    timeout = min(max(ahead, 0.005), self._poll)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("timer tick failed; retrying")
            if timeout > 0:
                await woken(self._wake, timeout)

    async def _tick(self) -> int:
        return await db.transaction(
            self._pool,
            lambda conn: attempts.due_process(
                conn, limit=self._batch, actor=self.actor, now=datetime.now(UTC)
            ),
        )
