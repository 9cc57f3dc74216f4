"""Bulk operations: cancel and kill of suspended invocations, purge of completed ones, at
10,000 and 100,000, with spans exported over OTLP to a local receiver.

The invocations are seeded with SQL (what the server would have written for them:
suspended on a day-long sleep, or completed) because running 100,000 handlers to that
point would take the bench minutes; the bulk operation itself goes through the server
like any other. Their deployment has no worker, so cancelled ones stay ready instead of
running their handlers on the same two cores.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from invoctl.client import Client, selector
from invoctl.sdk import Context, Service, Worker
from invoctl_server.domain.ids import new_invocation_id

SERVICE = "BulkBench"
PAGE = 1000

# Each with a trace of its own, as the server keeps it: a bulk operation's spans link to
# each invocation's trace, and those links are part of what it costs.
_SEED = """
    INSERT INTO invocations (id, service, handler, exclusive, state, outcome, deployment_id,
        input, attempt, due_at, waiting_on, output, journal_length, created_at, modified_at,
        completed_at, expires_at, traceparent)
    SELECT u.id, $2, $3, false, $4, $5, $6, 'null', 1, $7, $8, $9, $10, $11, $11, $12, $13,
        '00-' || md5(u.id) || '-' || left(md5(u.id || '.'), 16) || '-01'
    FROM unnest($1::text[]) AS u(id)
"""
_SEED_SLEEPS = """
    INSERT INTO journal_entries (invocation_id, idx, kind, completed, wake_at, delay_ms,
        created_at)
    SELECT u.id, 0, 'sleep', false, $2, 86400000, $3 FROM unnest($1::text[]) AS u(id)
"""


def _service(name: str = SERVICE) -> Service:
    svc = Service(name)

    @svc.handler()
    async def wait(ctx: Context) -> None:
        await ctx.sleep(86400)

    return svc


async def register_deployment(address: str) -> str:
    worker = Worker([_service()], server=address)
    deployment = await worker.register()
    await worker.stop()
    return deployment


async def seed(
    dsn: str, handler: str, n: int, state: str, deployment: str, *, service: str = SERVICE
) -> list[str]:
    ids = [new_invocation_id() for _ in range(n)]
    now = datetime.now(UTC)
    later = now + timedelta(days=1)
    suspended = state == "suspended"
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute(
                _SEED, ids, service, handler, state, None if suspended else "succeeded",
                deployment, later if suspended else None, 0 if suspended else None,
                None if suspended else "null", 1 if suspended else 0, now,
                None if suspended else now, None if suspended else later,
            )  # fmt: skip
            if suspended:
                await conn.execute(_SEED_SLEEPS, ids, later, now)
        # No ANALYZE: production starts on a database without statistics, and every
        # statement must be planned well then (tests/integration/test_plans.py).
    finally:
        await conn.close()
    return ids


async def _update_limit(dsn: str, ids: list[str]) -> float:
    """Rows/s of a set-based UPDATE ... WHERE id = ANY($1) of the same rows, in pages of
    PAGE, one transaction each: what Postgres alone does with them."""
    conn = await asyncpg.connect(dsn)
    try:
        started = time.perf_counter()
        for i in range(0, len(ids), PAGE):
            await conn.execute(
                "UPDATE invocations SET modified_at = now() WHERE id = ANY($1::text[])",
                ids[i : i + PAGE],
            )
        return len(ids) / (time.perf_counter() - started)
    finally:
        await conn.close()


async def _spans_settled(count_file: Path, at_least: int) -> tuple[int, int]:
    """The receiver's span counts once exports stop arriving (the exporter sends in
    batches on a timer), with a deadline."""
    deadline = time.monotonic() + 60
    last = None
    while time.monotonic() < deadline:
        text = await asyncio.to_thread(count_file.read_text)
        spans, with_id = (int(x) for x in text.split())
        if (spans, with_id) == last and with_id >= at_least:
            return spans, with_id
        last = (spans, with_id)
        await asyncio.sleep(2)  # polling the receiver's file between export batches
    return last or (0, 0)


async def bulk_operations(address: str, dsn: str, count_file: Path, sizes: list[int]) -> list:
    """Rows of (name, total s, invocations/s, median and max progress interval ms,
    spans with restate.invocation.id the receiver got, UPDATE limit rows/s)."""
    rows = []
    deployment = await register_deployment(address)
    plan = [("cancel", n, "suspended") for n in sizes]
    plan += [("kill", n, "suspended") for n in sizes]
    plan += [("purge", sizes[-1], "completed")]
    async with Client(address) as client:
        for round_no, (operation, n, state) in enumerate(plan):
            handler = f"h{round_no}"
            ids = await seed(dsn, handler, n, state, deployment)
            _, before = await _spans_settled(count_file, 0)
            stamps: list[float] = []
            started = time.perf_counter()
            messages = []
            async for progress in client.bulk_operation(
                operation, selector(service=SERVICE, handler=handler)
            ):
                stamps.append(time.perf_counter())
                messages.append(progress)
            total = time.perf_counter() - started
            assert messages[-1].processed == n, messages[-1]
            gaps = [b - a for a, b in itertools.pairwise(stamps)] or [0.0]
            _, with_id = await _spans_settled(count_file, before + n)
            limit = await _update_limit(dsn, ids) if operation != "purge" else 0.0
            rows.append(
                (
                    f"bulk {operation} of {n:,} {state} invocations",
                    total,
                    n / total,
                    statistics.median(gaps) * 1000,
                    max(gaps) * 1000,
                    with_id - before,
                    limit,
                )
            )
    return rows


async def cancel_compensated(address: str, dsn: str, n: int) -> tuple[float, float]:
    """A bulk cancel of n invocations suspended on a sleep, with a worker serving their
    handler: seconds until the operation acted on every one, and until every one completed
    cancelled (its handler saw the cancellation at the sleep, as Restate's do). A service
    of its own: the worker is then the only one of its deployment, and the invocations
    other rounds left ready (their deployment has no worker) stay where they are."""
    service = f"{SERVICE}Compensating"
    async with Worker([_service(service)], server=address) as worker, Client(address) as client:
        ids = await seed(dsn, "wait", n, "suspended", worker.deployment_id, service=service)
        started = time.perf_counter()
        async for _ in client.bulk_operation("cancel", selector(service=service, handler="wait")):
            pass
        accepted = time.perf_counter() - started
        conn = await asyncpg.connect(dsn)
        try:
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                done = await conn.fetchval(
                    "SELECT count(*) FROM invocations WHERE id = ANY($1) AND outcome = 'cancelled'",
                    ids,
                )
                if done == n:
                    break
                await asyncio.sleep(0.05)  # polling the database for the condition
            else:
                raise RuntimeError(f"only {done} of {n} cancelled invocations completed in 600 s")
        finally:
            await conn.close()
        return accepted, time.perf_counter() - started
