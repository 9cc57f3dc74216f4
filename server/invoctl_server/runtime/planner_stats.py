"""The loop that keeps the hot tables' statistics up with their growth (see
store/planner_stats.py): one catalog read per poll, an ANALYZE when a table has doubled."""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from ..store import planner_stats
from .loop import Loop

log = logging.getLogger("invoctl.planner_stats")


# An ANALYZE after which a table still looks outgrown skipped it: another session was
# analyzing it (SKIP_LOCKED), which soon ends, or the server's role may not analyze it (it
# does not own the table), which never does. A table skipped this many polls in a row is
# given up on, with a warning.
_GIVE_UP_AFTER = 3


class PlannerStats(Loop):
    task_name = "planner-stats"

    def __init__(self, pool: asyncpg.Pool, *, poll_interval: float) -> None:
        self._pool = pool
        self._poll = poll_interval
        self._skipped: dict[str, int] = {}  # table -> ANALYZEs in a row it was skipped by
        self.given_up: set[str] = set()

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
            tables = [t for t in await planner_stats.outgrown(conn) if t not in self.given_up]
            if not tables:
                return []
            await planner_stats.analyze(conn, tables)
            still = set(await planner_stats.outgrown(conn, tables))
        for table in tables:
            self._skipped[table] = self._skipped.get(table, 0) + 1 if table in still else 0
            if self._skipped[table] >= _GIVE_UP_AFTER:
                self.given_up.add(table)
                log.warning(
                    "could not analyze %s, which outgrew its statistics: is the server's "
                    "database role its owner? Statements planned while it was small read "
                    "all of it until autovacuum analyzes it", table,
                )  # fmt: skip
        done = [t for t in tables if t not in still]
        if done:
            log.info("analyzed %s: they outgrew their statistics", ", ".join(done))
        return done
