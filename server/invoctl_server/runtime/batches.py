"""The server's batched database work: one batcher per kind of operation (batcher.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from ..store import attempts, complete_statement
from ..store import invocations as istore
from .batcher import Batcher, Request, write_each
from .sessions import Dispatcher

INGRESS = "ingress"


def _now() -> datetime:
    return datetime.now(UTC)


class Batches:
    def __init__(self, pool: asyncpg.Pool, *, lease: timedelta, dispatcher: Dispatcher) -> None:
        self._lease = lease
        # Claims, in an invoke batch's transaction, the attempts it made ready.
        self._dispatcher = dispatcher
        # Operations without a set-based form: submit `work(conn)`.
        self.each = Batcher(pool, write_each, name="writes")
        # Invoke: submit a NewInvocation; returns Created.
        self.invokes = Batcher(pool, self._invokes, name="invokes")
        # Simple journal appends (attempts.is_simple): submit an Append; returns the
        # stored entries, or None when refused (journal_append then says why).
        self.appends = Batcher(pool, self._appends, name="appends", single_statement=True)
        # Attempt completions: submit a Completion; returns the completed row. The common
        # case is one statement (complete_statement.py), the rest one transaction.
        self.completes = Batcher(
            pool, self._completes, name="completes", first=self._completes_first
        )
        # Reads of invocations by ID (clients waiting for a result): submit an ID; returns
        # the row, or None when there is none.
        self.reads = Batcher(pool, self._reads, name="reads", single_statement=True)
        self._all = (self.each, self.invokes, self.appends, self.completes, self.reads)

    def start(self) -> None:
        for b in self._all:
            b.start()

    async def stop(self) -> None:
        for b in self._all:
            await b.stop()

    async def _invokes(self, conn: asyncpg.Connection, batch: list[Request]) -> list[Any]:
        created = await istore.invocations_create_many(
            conn, [(r.payload, r.parent) for r in batch], actor=INGRESS, now=_now(),
            notify_ready=False,
        )  # fmt: skip
        # One commit for accepted and claimed when a worker of the deployment is connected
        # here (Dispatcher.claim_within); the dispatchers of every server are woken only
        # for what is left.
        ready: dict[str, list[asyncpg.Record]] = {}
        for c in created:
            if isinstance(c, istore.Created) and c.runs_on:
                ready.setdefault(c.runs_on, []).append(c.row)
        if ready:
            claimed = await self._dispatcher.claim_within(conn, ready)
            if any(r["id"] not in claimed for rows in ready.values() for r in rows):
                await istore.ready_notify(conn)
        return created

    async def _appends(self, conn: asyncpg.Connection, batch: list[Request]) -> list[Any]:
        # One append per invocation per statement; a second one in the same batch (a
        # misbehaving worker) is refused and explained by the locked path.
        first: dict[str, int] = {}
        for i, r in enumerate(batch):
            first.setdefault(r.payload.invocation_id, i)
        unique = [batch[i].payload for i in first.values()]
        stored = dict(
            zip(
                first.values(),
                await attempts.journal_append_many(conn, unique, lease=self._lease, now=_now()),
                strict=True,
            )
        )
        return [stored.get(i) for i in range(len(batch))]

    async def _completes(self, conn: asyncpg.Connection, batch: list[Request]) -> list[Any]:
        # Not in the trace of the worker's session stream they arrived on: a completion is
        # traced in the invocation's own trace (transition.py).
        completions = [r.payload for r in batch]
        return await attempts.attempts_complete_many(conn, completions, now=_now())

    async def _completes_first(self, conn: asyncpg.Connection, batch: list[Request]) -> list[Any]:
        return await complete_statement.complete(conn, [r.payload for r in batch], now=_now())

    async def _reads(self, conn: asyncpg.Connection, batch: list[Request]) -> list[Any]:
        rows = {r["id"]: r for r in await istore.invocations_get(conn, [r.payload for r in batch])}
        return [rows.get(r.payload) for r in batch]
