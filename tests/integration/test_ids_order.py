"""IDs sort by creation time in Postgres, old and new alphabets together.

Keyset paging (newest first, `id < $last`) and the lock order (always by ID) read ID
order as age order; that holds only under byte order, so every ID column is "C".
"""

from __future__ import annotations

import random

from invoctl_server.domain import ids

# Columns that hold no ID of ours: tracing IDs and client-chosen request IDs.
_NOT_OURS = {"trace_id", "span_id", "request_id"}


async def test_every_id_column_compares_bytes(db):
    rows = await db.fetch(
        """
        SELECT c.relname AS tbl, a.attname AS col, coalesce(co.collname, '') AS collation
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid AND c.relkind = 'r'
        JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
        LEFT JOIN pg_collation co ON co.oid = a.attcollation
        WHERE a.atttypid = 'text'::regtype AND a.attnum > 0 AND NOT a.attisdropped
          AND (a.attname = 'id' OR a.attname LIKE '%\\_id' OR a.attname IN ('cursor'))
        """
    )
    columns = {(r["tbl"], r["col"]): r["collation"] for r in rows if r["col"] not in _NOT_OURS}
    assert ("invocations", "id") in columns and ("object_locks", "holder_id") in columns
    assert {k: v for k, v in columns.items() if v != "C"} == {}


async def test_ids_made_later_sort_later_in_the_invocations_id_column(db):
    await db.execute("CREATE TEMP TABLE ids AS SELECT id FROM invocations WITH NO DATA")
    old = ["inv_-P7llqQesR0pczet9Dmh2-", "inv_-P7lmYdzbRxKlMeOUP841V", "inv_-P7lmYe_a-zZ09Aazz_-"]
    start = 1_764_590_000_000  # 2025-12-01
    made = [f"inv_{ids._suffix(start + step)}" for step in (0, 1, 2, 61, 62, 3844, 10**9)]
    made.append(ids.new_invocation_id())  # now
    in_order = sorted(old) + made
    shuffled = in_order[:]
    random.shuffle(shuffled)
    await db.executemany("INSERT INTO ids VALUES ($1)", [(i,) for i in shuffled])
    newest_first = [r["id"] for r in await db.fetch("SELECT id FROM ids ORDER BY id DESC")]
    assert newest_first == in_order[::-1]
    # The keyset condition of the next page: everything older than a new ID, old ones too.
    older = await db.fetch("SELECT id FROM ids WHERE id < $1 ORDER BY id DESC", made[0])
    assert [r["id"] for r in older] == sorted(old, reverse=True)
