"""The retention cleaner: completed invocations are deleted once their service's retention
(default 24 h) has passed, in batches, safely with N servers (SKIP LOCKED). It also sweeps
the worker sessions that a dead server left behind."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import asyncpg

from ..store import db, operations, worker_sessions
from .loop import Loop

log = logging.getLogger("invoctl.cleaner")


class Cleaner(Loop):
    task_name = "cleaner"

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        poll_interval: float,
        actor: str,
        sessions_unseen: timedelta,
        batch: int = 1000,
    ) -> None:
        self._pool = pool
        # A session not heard of for this long has no stream left on any server.
        self._sessions_unseen = sessions_unseen
        self._poll = poll_interval
        self._batch = batch
        self._actor = actor

    async def _run(self) -> None:
        while True:
            try:
                while await self._tick() == self._batch:
                    pass  # a full batch: there may be more right away
                await db.transaction(
                    self._pool,
                    lambda conn: worker_sessions.sessions_sweep(
                        conn, unseen_since=datetime.now(UTC) - self._sessions_unseen
                    ),
                )
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
