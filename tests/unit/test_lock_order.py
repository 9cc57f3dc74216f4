"""Every statement in queries.sql that locks or writes invocations takes its locks in ID
order (README, "invocations are always locked in ID order, then object_locks"; issue 12):
an UPDATE or DELETE by `id = ANY(...)` locks its rows in whatever order its plan visits
them, and two such statements on overlapping rows deadlock. A statement holds the order
when it locks its rows with an `ORDER BY id FOR UPDATE` step first, or never waits (SKIP
LOCKED), or is listed below with the reason it is safe."""

from __future__ import annotations

import re

from invoctl_server.store._sql import Q

# Statements that lock or write invocations without an ID-ordered lock step of their own,
# and why that is safe.
SAFE: dict[str, str] = {
    "invocation_journal_written": "one row by primary key, which its caller locked",
    "invocation_journal_length": "one row by primary key, which its transaction created",
    "invocations_delete": "purge: the action locked the rows in ID order",
    "invocations_journal_purged": "purge-journal: the action locked the rows in ID order",
    "object_lock_next_pending_lock": "one row by primary key, before the key's row",
}

_WRITES = re.compile(r"\b(UPDATE|DELETE\s+FROM)\s+invocations\b", re.IGNORECASE)
_LOCKS = re.compile(r"\bFOR\s+(UPDATE|NO\s+KEY\s+UPDATE|SHARE|KEY\s+SHARE)\b", re.IGNORECASE)
_READS_INVOCATIONS = re.compile(r"\b(FROM|JOIN)\s+invocations\b", re.IGNORECASE)
_ID_ORDERED_LOCK = re.compile(
    r"\bORDER\s+BY\s+(\w+\.)?id\s+FOR\s+UPDATE(\s+OF\s+\w+)?\b", re.IGNORECASE
)
_NEVER_WAITS = re.compile(r"\bSKIP\s+LOCKED\b", re.IGNORECASE)


def _locks_invocations(sql: str) -> bool:
    return bool(_WRITES.search(sql)) or (
        bool(_LOCKS.search(sql)) and bool(_READS_INVOCATIONS.search(sql))
    )


def _holds_the_order(sql: str) -> bool:
    return bool(_ID_ORDERED_LOCK.search(sql) or _NEVER_WAITS.search(sql))


def test_the_check_tells_an_ordered_lock_from_a_plan_ordered_update():
    assert not _holds_the_order("UPDATE invocations SET due_at = $2 WHERE id = ANY($1::text[])")
    assert _holds_the_order(
        "WITH locked AS (SELECT id FROM invocations WHERE id = ANY($1) ORDER BY id FOR UPDATE)"
        " UPDATE invocations i SET due_at = $2 FROM locked l WHERE i.id = l.id"
    )
    assert _holds_the_order("SELECT i.* FROM invocations i ORDER BY i.id FOR UPDATE OF i")
    assert _locks_invocations("DELETE FROM invocations WHERE id = ANY($1)")
    assert not _locks_invocations("SELECT * FROM invocations WHERE id = $1")
    assert not _locks_invocations("SELECT holder_id FROM object_locks WHERE k = $1 FOR UPDATE")


def test_every_statement_that_locks_invocations_locks_them_in_id_order():
    unordered = {
        name
        for name, sql in Q.items()
        if _locks_invocations(sql) and not _holds_the_order(sql) and name not in SAFE
    }
    assert not unordered, (
        f"statements that lock or write invocations outside ID order: {sorted(unordered)}; "
        "lock the rows first (WITH locked AS (SELECT ... ORDER BY id FOR UPDATE)), or list "
        "the statement in SAFE with the reason it cannot deadlock"
    )


def test_the_safe_list_names_only_statements_that_need_it():
    stale = {
        name
        for name in SAFE
        if name not in Q or not _locks_invocations(Q[name]) or _holds_the_order(Q[name])
    }
    assert not stale, f"SAFE lists statements that are gone or need no reason: {sorted(stale)}"
