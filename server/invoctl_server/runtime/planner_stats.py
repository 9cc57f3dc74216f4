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
        # Outgrown tables the server's role may not analyze, said once in the log.
        self.not_ours: set[str] = set()

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
        """Analyze the tables that outgrew their statistics; returns those analyzed."""
        async with self._pool.acquire() as conn:
            found = await planner_stats.outgrown(conn)
            tables = [t for t, ours in found.items() if ours]
            if tables:
                await planner_stats.analyze(conn, tables)
        for table in sorted(t for t, ours in found.items() if not ours and t not in self.not_ours):
            self.not_ours.add(table)
            log.warning(
                "%s outgrew its statistics, but the server's database role does not own it "
                "and may not analyze it: statements planned while it was small read all of it "
                "until autovacuum analyzes it", table,
            )  # fmt: skip
        if tables:
            log.info("analyzed %s: they outgrew their statistics", ", ".join(tables))
        return tables
