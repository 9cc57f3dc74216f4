"""Group commit: concurrent operations of one kind share a transaction and, where the
store has a set-based form, its statements.

A statement costs about the same whether it touches one row or a hundred (the client's
round trip and system calls dominate), so operations that arrive while a batch is being
written wait for the next one and are written together. Each operation is still locked,
checked against the state table, recorded and traced on its own: the store functions do
that per row.

Contract for write functions: they return one result per request, in order, where a
DomainError stands for that request's refusal, and they raise it only before writing
anything for that request (the store checks, then writes), so the rest of the batch can
commit. Any other error aborts the shared transaction; then each request of that batch is
written alone, so only the one at fault fails.

A batcher may be given a `first` write too: one statement, run without a transaction (no
BEGIN and COMMIT round trips), that does what it can of a batch (the common case) and
returns None for the requests it left to `write`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from opentelemetry import context as otel_context

from ..domain.errors import DomainError
from ..store import attempts, db

log = logging.getLogger("invoctl.batcher")


@dataclasses.dataclass(frozen=True)
class Request:
    """What a caller asked for, and its trace context: the spans of the transitions it
    causes are children of the caller's span, though a batcher task writes them."""

    payload: Any
    parent: otel_context.Context
    future: asyncio.Future = dataclasses.field(compare=False)


# (connection, requests) -> one result per request; a DomainError result is a refusal.
Write = Callable[[asyncpg.Connection, list[Request]], Awaitable[list[Any]]]


class Batcher:
    def __init__(
        self,
        pool: asyncpg.Pool,
        write: Write,
        *,
        name: str,
        max_batch: int = 256,
        parallel: int = 1,
        single_statement: bool = False,
        first: Write | None = None,
    ) -> None:
        self._pool = pool
        self._write_many = write
        # Tried first, as one statement: what it returns None for goes on to `write`.
        self._first = first
        # A write of one statement is atomic by itself: no BEGIN and COMMIT round trips.
        self._single = single_statement
        self._name = name
        self._max = max_batch
        self._parallel = parallel
        self._queue: asyncio.Queue[Request] = asyncio.Queue()
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        # While a batch is written the next one collects requests; more batches in flight
        # would only make each smaller.
        self._tasks = [
            asyncio.create_task(self._run(), name=f"invoctl-{self._name}-{i}")
            for i in range(self._parallel)
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        while not self._queue.empty():
            self._queue.get_nowait().future.cancel()

    async def submit(self, payload: Any) -> Any:
        """Write `payload` in the next batch; returns its result or raises its refusal."""
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(Request(payload, otel_context.get_current(), fut))
        return await fut

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            batch = [r for r in batch if not r.future.done()]
            if not batch:
                continue
            write = asyncio.create_task(self._write(batch))

            def abandon(_future: asyncio.Future, write=write, batch=batch) -> None:
                # Every caller went away (deadline, cancelled RPC): stop the database
                # work too; the transaction rolls back.
                if all(r.future.cancelled() for r in batch):
                    write.cancel()

            for r in batch:
                r.future.add_done_callback(abandon)
            try:
                await asyncio.wait({write})
            except asyncio.CancelledError:
                write.cancel()
                await asyncio.gather(write, return_exceptions=True)
                raise
            if write.cancelled():
                log.info("%s: a batch of %d was abandoned by its callers", self._name, len(batch))
            elif (exc := write.exception()) is not None:  # a batcher task must never die
                log.error(
                    "%s: a batch of %d failed unexpectedly", self._name, len(batch), exc_info=exc
                )
                for r in batch:
                    _settle(r, exc)

    async def _write(self, batch: list[Request]) -> None:
        if self._first is not None:
            batch = await self._write_first(batch)
            if not batch:
                return
        try:
            results = await self._transaction(lambda c: self._write_many(c, batch))
        except Exception as exc:  # isolated below
            if len(batch) == 1:
                _settle(batch[0], exc)
                return
            log.info(
                "%s: a batch of %d failed (%s); writing each alone", self._name, len(batch), exc
            )
            for r in batch:
                try:
                    [result] = await self._transaction(lambda c, r=r: self._write_many(c, [r]))
                except Exception as one_exc:  # handed to the caller
                    result = one_exc
                _settle(r, result)
            return
        for r, result in zip(batch, results, strict=True):
            _settle(r, result)

    async def _write_first(self, batch: list[Request]) -> list[Request]:
        """Settle the requests `first` can write in one statement; returns the others.
        The statement is atomic: if it fails, it wrote nothing. The database gone or a
        lock timed out: `write` takes the requests (and says so if it persists). Any
        other error is handled as in _write: each request alone, only the one at fault
        fails."""
        try:
            results = await db.statement(self._pool, lambda c: self._first(c, batch))
        except DomainError as exc:
            log.info("%s: the one-statement write of %d failed (%s)", self._name, len(batch), exc)
            return batch
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0], exc)
                return []
            log.info("%s: a one-statement write of %d failed (%s); writing each alone",
                     self._name, len(batch), exc)  # fmt: skip
            return [r for one in batch for r in await self._write_first([one])]
        rest = []
        for r, result in zip(batch, results, strict=True):
            if result is None:
                rest.append(r)
            else:
                _settle(r, result)
        return rest

    async def _transaction(self, work):
        if self._single:
            return await db.statement(self._pool, work)
        return await db.transaction(self._pool, work)


def _settle(request: Request, result: Any) -> None:
    if request.future.done():
        return
    if isinstance(result, BaseException):
        request.future.set_exception(result)
    else:
        request.future.set_result(result)


@dataclasses.dataclass(frozen=True)
class Locking:
    """A `write_each` payload that locks invocations of attempts: `work(conn)` locks
    `invocation_ids` (with their callers and the next invocation pending on their keys,
    see attempts.attempts_lock), which the batch locks first, for all its payloads at
    once in ID order: run one after another, each locking its own, they would lock in the
    order they arrived and deadlock with any other batch."""

    invocation_ids: tuple[str, ...]
    work: Callable[[asyncpg.Connection], Awaitable[Any]]

    async def __call__(self, conn: asyncpg.Connection) -> Any:
        return await self.work(conn)


async def write_each(conn: asyncpg.Connection, batch: list[Request]) -> list[Any]:
    """Write function for operations without a set-based form: each payload is a
    `work(conn)` coroutine function, run one after another in the shared transaction.
    The invocations `Locking` payloads name are locked first, in ID order."""
    ids = {i for r in batch if isinstance(r.payload, Locking) for i in r.payload.invocation_ids}
    if ids:
        await attempts.attempts_lock(conn, sorted(ids))
    results: list[Any] = []
    for r in batch:
        token = otel_context.attach(r.parent)
        try:
            results.append(await r.payload(conn))
        except DomainError as exc:
            results.append(exc)
        finally:
            otel_context.detach(token)
    return results
