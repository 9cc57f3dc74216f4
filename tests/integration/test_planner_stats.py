"""Plans made while the hot tables were small are replaced once the tables have grown
(store/planner_stats.py): the server analyzes a table that has more than doubled since
its statistics were taken, and Postgres plans the statements that read it again.

Autovacuum would analyze these tables too, a minute or so later: each test raises its
threshold out of reach, so that only the server's own check can be what analyzed them.
"""

from __future__ import annotations

import asyncio
import json
import time

import asyncpg
import pytest

from invoctl_server.app import App
from invoctl_server.runtime.planner_stats import PlannerStats
from invoctl_server.store import db as store_db
from invoctl_server.store import planner_stats
from invoctl_server.store._sql import Q
from tests.conftest import server_config
from tests.integration.test_plans import _whole_table_scans


async def _grow(db, first: int, last: int) -> None:
    """Invocations `first`..`last`, completed, with two journal entries each."""
    await db.execute(
        """
        INSERT INTO invocations (id, service, handler, exclusive, state, outcome, input,
            deployment_id, attempt, journal_length, created_at, modified_at, completed_at)
        SELECT 'inv_-' || lpad(g::text, 21, '0'), 'Old', 'h', false, 'completed',
            'succeeded', 'null', 'dp_' || repeat('0', 22), 1, 2, now(), now(), now()
        FROM generate_series($1::int, $2::int) AS g
        """,
        first,
        last,
    )
    await db.execute(
        """
        INSERT INTO journal_entries (invocation_id, idx, kind, completed, created_at)
        SELECT 'inv_-' || lpad(g::text, 21, '0'), i, 'run', true, now()
        FROM generate_series($1::int, $2::int) AS g, generate_series(0, 1) AS i
        """,
        first,
        last,
    )
    # A busy backend reports its counts to the cumulative statistics at least once a
    # second, an idle one within ten: now, here.
    await db.execute("SELECT pg_stat_force_next_flush()")


async def _small_and_analyzed(db) -> None:
    """A fresh database as autovacuum first sees it: a few rows, analyzed."""
    for table in planner_stats.TABLES:
        await db.execute(f"ALTER TABLE {table} SET (autovacuum_analyze_threshold = 2000000000)")
    await db.execute(
        "INSERT INTO deployments (id, created_at) VALUES ('dp_' || repeat('0', 22), now())"
    )
    await _grow(db, 1, 20)
    await db.execute("ANALYZE invocations, journal_entries")


async def _outgrown(db) -> list[str]:
    """The tables that outgrew their statistics, in name order."""
    return list(await planner_stats.outgrown(db))


async def _relpages(db, table: str) -> int:
    return await db.fetchval("SELECT relpages FROM pg_class WHERE relname = $1", table)


async def _reltuples(db, table: str) -> float:
    return await db.fetchval("SELECT reltuples FROM pg_class WHERE relname = $1", table)


async def _scans(conn, execute: str) -> set[str]:
    [plan] = json.loads(await conn.fetchval(f"EXPLAIN (FORMAT JSON) EXECUTE {execute}"))
    return set(_whole_table_scans(plan["Plan"]))


async def test_a_plan_made_on_a_small_table_is_made_again_once_the_table_grew(database, db):
    await _small_and_analyzed(db)
    # A connection of the server's kind: statements planned once, generically.
    server = await asyncpg.connect(
        database, server_settings={"plan_cache_mode": "force_generic_plan"}
    )
    try:
        await server.execute("PREPARE lock AS " + Q["invocations_lock_with_callers"])
        await server.execute("PREPARE journal AS " + Q["journal_entries"])
        one = "inv_-" + "0" * 20 + "3"
        lock, journal = f"lock('{{{one}}}')", f"journal('{one}')"
        # Made while the tables were small: it reads them whole, the cheapest way then.
        assert await _scans(server, lock) == {"invocations"}
        assert await _scans(server, journal) == {"journal_entries"}
        assert await _outgrown(db) == []

        await _grow(db, 21, 20_000)
        assert await _outgrown(db) == ["invocations", "journal_entries"]
        # Still the small tables' plans, now on 20,000 invocations.
        assert await _scans(server, lock) == {"invocations"}

        await planner_stats.analyze(db, await _outgrown(db))
        assert await _scans(server, lock) == set()
        assert await _scans(server, journal) == set()
        # Analyzed once: not again until the tables double once more.
        assert await _outgrown(db) == []
    finally:
        await server.close()


async def test_an_analyze_during_a_large_insert_is_made_again_once_it_committed(database, db):
    """An ANALYZE that runs while a large insert is in flight (an operator's, say)
    records its pages but none of its rows: the planner then takes a table of thousands
    of invocations for empty, and the page count alone says nothing is wrong. The
    server's own check does not analyze then: rows not committed are not counted."""
    await _small_and_analyzed(db)
    loader = await asyncpg.connect(database)
    try:
        async with loader.transaction():
            await _grow(loader, 21, 20_000)
            assert await _outgrown(db) == []
            await db.execute("ANALYZE invocations, journal_entries")
            assert await _reltuples(db, "invocations") < 100
            assert await _outgrown(db) == []
        deadline = time.monotonic() + 30
        while await _outgrown(db) != ["invocations", "journal_entries"]:
            assert time.monotonic() < deadline, await _outgrown(db)
            await asyncio.sleep(0.05)  # polling the statistics, with a deadline
    finally:
        await loader.close()
    await planner_stats.analyze(db, await _outgrown(db))
    assert await _outgrown(db) == []
    assert await _reltuples(db, "invocations") > 10_000


async def test_a_bulk_operation_of_many_members_has_its_pages_planned_again(database, db):
    await _small_and_analyzed(db)
    await db.execute(
        "INSERT INTO bulk_operations (id, kind, state, selector, identity, created_at,"
        " updated_at) VALUES ('bulk_1', 'kill', 'running', '', 'test', now(), now())"
    )
    await db.execute("ANALYZE bulk_operation_members")
    await _grow(db, 21, 20_000)
    await db.execute(
        "INSERT INTO bulk_operation_members (bulk_id, invocation_id)"
        " SELECT 'bulk_1', id FROM invocations"
    )
    await db.execute("SELECT pg_stat_force_next_flush()")  # as in _grow
    assert "bulk_operation_members" in await _outgrown(db)


@pytest.mark.parametrize("off", ["false", "off", "0", "no"])
async def test_a_table_whose_autovacuum_is_off_is_left_to_its_operator(database, db, off):
    await _small_and_analyzed(db)
    await db.execute(f"ALTER TABLE journal_entries SET (autovacuum_enabled = {off})")
    await _grow(db, 21, 5_000)
    assert await _outgrown(db) == ["invocations"]


async def test_a_table_the_server_may_not_analyze_is_said_once_and_left_alone(database, db, caplog):
    await _small_and_analyzed(db)
    await _grow(db, 21, 5_000)
    role = "invoctl_not_owner"
    await db.execute(f"DROP ROLE IF EXISTS {role}")
    await db.execute(f"CREATE ROLE {role} LOGIN")
    try:
        # Everything a server does with the tables, but not MAINTAIN: Postgres skips them,
        # with a WARNING to the session only.
        await db.execute(
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}"
        )
        pool = await store_db.create_pool(database.replace("//postgres", f"//{role}", 1))
        try:
            stats = PlannerStats(pool, poll_interval=1.0)
            for _ in range(2):
                assert await stats.check() == []
            assert stats.not_ours == {"invocations", "journal_entries"}
            warned = [r for r in caplog.records if "does not own it" in r.getMessage()]
            assert [r.getMessage().split()[0] for r in warned] == [
                "invocations",
                "journal_entries",
            ]  # once each, not at every poll
            assert await _outgrown(db) == ["invocations", "journal_entries"]
        finally:
            await pool.close()
    finally:
        await db.execute(f"DROP OWNED BY {role}")
        await db.execute(f"DROP ROLE {role}")


async def test_the_server_analyzes_a_table_that_outgrew_its_statistics(database, db):
    await _small_and_analyzed(db)
    small = await _relpages(db, "invocations")
    app = await App.start(server_config(database))
    try:
        await _grow(db, 21, 5_000)
        # One ANALYZE of both, each table in a transaction of its own: invocations' new
        # statistics may be visible a moment before journal_entries'.
        deadline = time.monotonic() + 30
        while await _outgrown(db):
            assert time.monotonic() < deadline, "the server never analyzed the tables"
            await asyncio.sleep(0.05)  # polling the catalog, with a deadline
        assert await _relpages(db, "invocations") > small
    finally:
        await app.stop(grace=0)
