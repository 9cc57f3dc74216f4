"""Bulk operations (DESIGN.md section 5): a durable job row per request, the invocations
it matched when it started (bulk_operation_members), and pages.

A page is one transaction: it reads the next invocations after the cursor, acts on them
(in one statement where single_statement.py can, with the set-based operator actions of
operations.py for the rest), and advances counts and cursor from
where it started, if the job is still running and still this server's (else it rolls
back). Page and cursor commit together, so a server that dies mid-page leaves the job
exactly where its last page ended, and whoever takes it over never acts twice on an
invocation.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
from opentelemetry import context as otel_context

from .. import page_spans
from ..domain.errors import DomainError, InvalidTransition, InvocationNotFound
from ..domain.ids import new_bulk_operation_id
from ..domain.selector import Selector
from ..domain.states import State, started
from . import notify, single_statement
from . import operations as ops
from ._sql import Q, custom_plans

KINDS = {
    "cancel": ops.cancel_many,
    "kill": ops.kill_many,
    "pause": ops.pause_many,
    "resume": ops.resume_many,
    "purge": ops.purge_many,
    "restart": ops.restart_many,
}
MAX_FAILURES = 20
DRY_RUN_SAMPLE = 20

# The selector as SQL; each filter is off when its parameter is NULL. Run with custom
# plans (_sql.custom_plans): a generic plan could not use the index a filter needs.
_MATCH = """
    ($1::text IS NULL OR service = $1) AND ($2::text IS NULL OR handler = $2)
    AND ($3::text IS NULL OR object_key = $3) AND ($4::text[] IS NULL OR state = ANY($4))
    AND ($5::text IS NULL OR deployment_id = $5)
    AND ($6::timestamptz IS NULL OR created_at < $6)
    AND ($7::timestamptz IS NULL OR created_at >= $7)
    AND ($8::text[] IS NULL OR id = ANY($8))
"""
_SNAPSHOT = f"""
    INSERT INTO bulk_operation_members (bulk_id, invocation_id)
    SELECT $9, id FROM invocations WHERE {_MATCH}
"""  # filters are bound, never formatted in
# A dry run: the matches by state (and whether they started: a resume skips a ready one
# that never did), and the first of them by ID.
_DRY_RUN_COUNTS = f"""
    SELECT state, attempt > 0 AS attempted, count(*) AS n FROM invocations WHERE {_MATCH}
    GROUP BY 1, 2
"""
_DRY_RUN_SAMPLE = f"""
    SELECT id FROM invocations WHERE {_MATCH} ORDER BY id LIMIT $9
"""


def _selector_args(s: Selector) -> list[Any]:
    return [
        s.service, s.handler, s.key, list(s.states) if s.states is not None else None,
        s.deployment_id, s.created_before, s.created_after,
        list(s.invocation_ids) if s.invocation_ids is not None else None,
    ]  # fmt: skip


async def bulk_running(conn: asyncpg.Connection) -> int:
    """Bulk operations running now, under a lock held until this transaction ends, so
    that concurrent starts count each other."""
    return await conn.fetchval(Q["bulk_running_count"])


async def bulk_create(
    conn: asyncpg.Connection,
    *,
    kind: str,
    selector: Selector,
    selector_proto: bytes,
    deployment: str,
    reason: str,
    identity: str,
    request_id: str | None,
    max_per_second: float,
    traceparent: str | None,
    owner: str,
    lease_until: datetime,
    now: datetime,
) -> asyncpg.Record:
    """Start a bulk operation: its row (owned by `owner`) and the snapshot of the
    invocations it matches now. One that matches nothing is completed at once. Raises
    asyncpg.UniqueViolationError if `request_id` started one already."""
    job = await conn.fetchrow(
        Q["bulk_insert"], new_bulk_operation_id(), kind, selector_proto, deployment, reason,
        identity, request_id, max_per_second, traceparent, owner, lease_until, now,
    )  # fmt: skip
    await custom_plans(conn)
    status = await conn.execute(_SNAPSHOT, *_selector_args(selector), job["id"])
    return await conn.fetchrow(Q["bulk_matched"], job["id"], int(status.split()[-1]))


async def bulk_dry_run(
    conn: asyncpg.Connection, selector: Selector
) -> tuple[list[tuple[State, bool, int]], list[str]]:
    """The invocations the selector matches now, as (state, started, count), and the
    first of them by ID."""
    args = _selector_args(selector)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        await custom_plans(conn)
        counts = await conn.fetch(_DRY_RUN_COUNTS, *args)
        sample = await conn.fetch(_DRY_RUN_SAMPLE, *args, DRY_RUN_SAMPLE)
    return [
        (State(r["state"]), started(State(r["state"]), int(r["attempted"])), r["n"]) for r in counts
    ], [r["id"] for r in sample]


async def bulk_get(conn: asyncpg.Connection, bulk_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(Q["bulk_get"], bulk_id)


async def bulk_page(
    conn: asyncpg.Connection, *, states: Sequence[str] | None, before_id: str | None, limit: int
) -> list[asyncpg.Record]:
    return await conn.fetch(Q["bulk_page"], states, before_id, limit)


def _count(
    ids: Sequence[str], results: Sequence[ops.Result]
) -> tuple[int, int, int, list[dict[str, str]]]:
    """succeeded, skipped and failed, and the failures: a state where the operation does
    not apply, or an invocation gone since, is skipped; any other refusal failed."""
    succeeded = skipped = 0
    failures: list[dict[str, str]] = []
    for invocation_id, r in zip(ids, results, strict=True):
        if not isinstance(r, DomainError):
            succeeded += 1
        elif isinstance(r, InvalidTransition | InvocationNotFound):
            skipped += 1
        else:
            failures.append(
                {"invocation_id": invocation_id, "reason": r.reason, "message": r.message}
            )
    return succeeded, skipped, len(failures), failures


async def bulk_members_after(
    conn: asyncpg.Connection, bulk_id: str, cursor: str | None, size: int
) -> list[str]:
    """The IDs of the operation's next page: its members after `cursor`, in ID order."""
    rows = await conn.fetch(Q["bulk_members_after"], bulk_id, cursor or "", size)
    return [r["invocation_id"] for r in rows]


async def bulk_act(
    conn: asyncpg.Connection, job: asyncpg.Record, ids: Sequence[str], *, actor: str,
    now: datetime,
) -> list[ops.Result]:  # fmt: skip
    """Act on a page's invocations, each locked first. Its transitions are traced in the
    current context (the page's span), linked to each invocation's."""
    if not ids:
        return []
    page, kind = otel_context.get_current(), job["kind"]
    locked = await ops.lock_batch(conn, ((kind, i) for i in ids))
    with page_spans.page():
        results: list[ops.Result | None] = [None] * len(ids)
        if single_statement.supports(kind, job["deployment"]):
            # The common case in one statement (unaudited: the bulk operation is); the
            # rest it leaves unchanged, for operations.py (lock_batch locked their trees).
            requests = [single_statement.Request(i, actor, page, "", "") for i in ids]
            results = list(await single_statement.act(conn, kind, requests, operation=None,
                                                      now=now))  # fmt: skip
            locked = None  # rows the statement changed may be in the others' call trees
        rest = [n for n, r in enumerate(results) if r is None]
        if rest:
            targets = [ops.Target(ids[n], page, deployment=job["deployment"]) for n in rest]
            acted = await KINDS[kind](conn, targets, actor=actor, now=now, locked=locked)
            for n, r in zip(rest, acted, strict=True):
                results[n] = r
        return results  # type: ignore[return-value]


async def bulk_advance(
    conn: asyncpg.Connection,
    bulk_id: str,
    ids: Sequence[str],
    results: Sequence[ops.Result],
    *,
    cursor: str | None,
    owner: str,
    lease_until: datetime,
    now: datetime,
) -> asyncpg.Record | None:
    """Count a page and move the cursor past it, from `cursor` (where the page started);
    returns the operation's row after, or None when it is no longer this server's to run
    (stopped, or taken over) or the cursor moved on, and then the page must roll back."""
    succeeded, skipped, failed, failures = _count(ids, results)
    return await conn.fetchrow(
        Q["bulk_advance"], bulk_id, succeeded, skipped, failed, json.dumps(failures),
        ids[-1] if ids else cursor, lease_until, now, not ids, notify.BULK, MAX_FAILURES,
        owner, cursor,
    )  # fmt: skip


async def bulk_stop(conn: asyncpg.Connection, bulk_id: str, *, now: datetime):
    """Stop the operation if it runs; returns its row (None: unknown)."""
    row = await conn.fetchrow(Q["bulk_stop"], bulk_id, now, notify.BULK)
    return row if row is not None else await bulk_get(conn, bulk_id)


async def bulk_claim(
    conn: asyncpg.Connection, *, owner: str, lease_until: datetime, now: datetime, limit: int
) -> list[asyncpg.Record]:
    """Take over running operations whose server stopped renewing them."""
    return await conn.fetch(Q["bulk_claim"], owner, lease_until, now, limit)


async def bulk_renew(
    conn: asyncpg.Connection, bulk_id: str, *, owner: str, lease_until: datetime
) -> bool:
    return await conn.execute(Q["bulk_renew"], bulk_id, owner, lease_until) != "UPDATE 0"


async def bulk_release(conn: asyncpg.Connection, *, owner: str) -> None:
    await conn.execute(Q["bulk_release"], owner)
