"""Statistics of the tables the hot statements read, kept up with their growth.

The server's statements are prepared once per connection and planned generically
(db.create_pool), and Postgres keeps such a plan until the statistics of a table it reads
change. A plan made while `invocations` held a few pages reads all of them, which is the
cheapest way then; it goes on doing so as the table grows, until autovacuum analyzes the
table again (up to a minute later, or longer while it is busy elsewhere). At a few
thousand invocations that made a completion's locking statement take 2 ms instead of
0.1 ms. Analyzing a table whose rows have more than doubled since its statistics were
taken replaces those plans: an ANALYZE invalidates every plan that reads the table.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from ._sql import Q

# The tables of the hot paths (tests/integration/test_plans.py holds their plans to index
# access on a large table), and the members of bulk operations, which one request can grow
# from a few rows to 100,000 (a page read planned on a few rows would read them all).
TABLES = ("bulk_operation_members", "invocations", "journal_entries")
# Below this many rows (a few pages of invocations) a table is not worth an ANALYZE:
# reading all of it costs little more than an index lookup.
MIN_ROWS = 100


async def outgrown(
    conn: asyncpg.Connection, tables: Sequence[str] = TABLES, min_rows: int = MIN_ROWS
) -> dict[str, bool]:
    """The tables of `tables` that outgrew their statistics (queries.sql says when), in
    name order, each with whether the connection's role may analyze it (owns it)."""
    rows = await conn.fetch(Q["statistics_outgrown"], list(tables), min_rows)
    return {r["relname"]: r["may_analyze"] for r in rows}


async def analyze(conn: asyncpg.Connection, tables: Sequence[str]) -> None:
    """ANALYZE `tables` (names of this module's TABLES). SKIP_LOCKED: a table another
    server is analyzing right now is left to it."""
    if tables:
        names = ", ".join(_ident(t) for t in tables)
        await conn.execute(f"ANALYZE (SKIP_LOCKED) {names}")


def _ident(table: str) -> str:
    if table not in TABLES:
        raise ValueError(f"not a table of planner_stats: {table!r}")
    return f'"{table}"'
