"""The loop that keeps the hot tables' statistics up with their growth (see
store/planner_stats.py): one catalog read per poll, an ANALYZE when a table has doubled."""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from ..store import planner_stats
from .loop import Loop

log = logging.getLogger("invoctl.planner_stats")


class PlannerStats(Loop):
    task_name = "planner-stats"

    def __init__(self, pool: asyncpg.Pool, *, poll_interval: float) -> None:
        self._pool = pool
        self._poll = poll_interval

    async def _run(self) -> None:
        while True:
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database away, say: autovacuum still runs
                log.warning("could not check the tables' statistics: %s", exc)
            await asyncio.sleep(self._poll)  # the poll period of a background loop

    async def check(self) -> list[str]:
        """Analyze the tables that outgrew their statistics; returns their names."""
        async with self._pool.acquire() as conn:
            tables = await planner_stats.outgrown(conn)
            if tables:
                await planner_stats.analyze(conn, tables)
                log.info("analyzed %s: they outgrew their statistics", ", ".join(tables))
        return tables
