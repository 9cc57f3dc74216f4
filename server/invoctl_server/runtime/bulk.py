"""Runs bulk operations, page by page: the ones this server starts, and the ones whose
server stopped renewing their lease (it died, or stopped). Every server runs one
BulkRunner; any of them can stream any operation's progress (watch)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ..store import bulk as store
from ..store import db
from .loop import woken

log = logging.getLogger("invoctl.bulk")
_tracer = trace.get_tracer("invoctl.server")

# Progress goes out at least 4 times a second while an operation runs (DESIGN.md section
# 5). The interval between sends leaves room for reading the row before each one and for
# a page's span work, which holds the event loop for up to ~150 ms.
WATCH_INTERVAL = 0.1


def _now() -> datetime:
    return datetime.now(UTC)


class _NotAfter(Exception):
    """A page may not commit: the operation is no longer this server's to run, or the
    page before it did not commit."""


class BulkRunner:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        owner: str,
        lease: timedelta,
        poll_interval: float,
        max_running: int = 4,
        page_size: int = 1000,
    ) -> None:
        self._pool = pool
        self.owner = owner
        self._lease = lease
        self._poll = poll_interval
        self._max = max_running
        self._page = page_size
        self._running: dict[str, asyncio.Task[None]] = {}
        self._watchers: dict[str, set[asyncio.Event]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._claim_loop(), name="invoctl-bulk")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._running.values()) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # Hand the operations over now rather than when their leases lapse.
        with contextlib.suppress(Exception):
            await db.statement(self._pool, lambda c: store.bulk_release(c, owner=self.owner))

    def lease_until(self) -> datetime:
        return _now() + self._lease

    def run(self, job: asyncpg.Record) -> None:
        """Run an operation this server owns (it just started it, or claimed it)."""
        if job["id"] not in self._running and job["state"] == "running":
            task = asyncio.create_task(self._run(job), name=f"invoctl-{job['id']}")
            self._running[job["id"]] = task
            task.add_done_callback(lambda _t, i=job["id"]: self._done(i))

    def _done(self, bulk_id: str) -> None:
        self._running.pop(bulk_id, None)
        self._wake.set()  # room for another

    def changed(self, bulk_id: str) -> None:
        """An operation's counts or state changed (notification from any server)."""
        for event in self._watchers.get(bulk_id, ()):
            event.set()

    async def watch(self, bulk_id: str) -> AsyncIterator[None]:
        """Yields at once, then whenever the operation changed, and at least every
        WATCH_INTERVAL."""
        event = asyncio.Event()
        self._watchers.setdefault(bulk_id, set()).add(event)
        try:
            while True:
                event.clear()
                yield
                # Counted from when the last message went out, however long it took.
                await woken(event, WATCH_INTERVAL)
        finally:
            watchers = self._watchers[bulk_id]
            watchers.discard(event)
            if not watchers:
                del self._watchers[bulk_id]

    async def _claim_loop(self) -> None:
        while True:
            try:
                room = self._max - len(self._running)
                if room > 0:
                    now = _now()
                    claimed = await db.statement(
                        self._pool,
                        lambda c, now=now, room=room: store.bulk_claim(
                            c, owner=self.owner, lease_until=now + self._lease, now=now,
                            limit=room,
                        ),
                    )  # fmt: skip
                    for job in claimed:
                        log.info("taking over bulk operation %s at %s", job["id"], job["cursor"])
                        self.run(job)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("claiming bulk operations failed; retrying")
            self._wake.clear()
            await woken(self._wake, self._poll)

    async def _run(self, job: asyncpg.Record) -> None:
        failures = 0
        while True:
            try:
                await self._pages(job)
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception:
                failures += 1
                log.exception("a page of bulk operation %s failed; retrying", job["id"])
                await asyncio.sleep(min(5.0, 0.1 * 2**failures))  # back off, then retry
            # The pages stop when the operation ends, when one failed, or when one could
            # not advance (the cursor moved, the lease lapsed): go on from the last page
            # that committed, while the operation is still this server's to run.
            cursor = job["cursor"]
            try:
                job = await db.statement(self._pool, lambda c, i=job["id"]: store.bulk_get(c, i))
            except asyncio.CancelledError:
                raise
            except Exception:
                continue  # the next page finds out where it stands
            if job is None or job["state"] != "running" or job["owner"] != self.owner:
                return
            if job["cursor"] == cursor:
                # Nothing committed (a lapsed lease, say, until the claim loop renews it):
                # wait before acting on the same page again.
                await asyncio.sleep(self._poll)

    async def _pages(self, job: asyncpg.Record) -> None:
        """Run the operation's pages until it ends, two at a time: while a page is written
        the next one reads and acts, and it advances (and commits) only after the page
        before it committed, from the cursor that page left. Raises if a page failed; the
        page after it then rolls back too."""
        bulk_id, mps = job["id"], job["max_per_second"]
        size = self._page if mps <= 0 else max(1, min(self._page, int(mps * WATCH_INTERVAL)))
        parent = None
        if job["traceparent"]:
            parent = TraceContextTextMapPropagator().extract({"traceparent": job["traceparent"]})
        cursor, started, done_here = job["cursor"], time.monotonic(), 0
        before: asyncio.Task | None = None  # the page being written
        current: asyncio.Task | None = None
        try:
            while True:
                read: asyncio.Future[list[str] | None] = asyncio.get_running_loop().create_future()
                current = asyncio.create_task(
                    self._one_page(job, parent, size, cursor, read, before),
                    name=f"invoctl-{bulk_id}-page",
                )
                ids = await read  # None: the page failed or ended before it read
                if before is not None:
                    row = await before  # raises if it failed
                    if row is None or row["state"] != "running":
                        return  # ended (the page after it rolls back, below)
                before = current
                if not ids or len(ids) < size:  # the last page: nothing after it
                    await current
                    current = None
                    return
                cursor = ids[-1]
                done_here += size
                if mps > 0:
                    await self._throttle(bulk_id, started + done_here / mps)
        finally:
            for task in {before, current} - {None}:
                if not task.done():
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)

    async def _one_page(
        self,
        job: asyncpg.Record,
        parent,
        size: int,
        cursor: str | None,
        read: asyncio.Future,
        before: asyncio.Task | None,
    ) -> asyncpg.Record | None:
        """One page in one transaction; `read` gets its IDs as soon as it has them. Returns
        the operation's row after it, or None when the operation is no longer this
        server's to run (the page then rolled back)."""
        bulk_id, now = job["id"], _now()

        async def work(conn: asyncpg.Connection) -> asyncpg.Record:
            ids = await store.bulk_members_after(conn, bulk_id, cursor, size)
            if not read.done():  # (a retried transaction reads the same page again)
                read.set_result(ids)
            results = await store.bulk_act(conn, job, ids, actor=f"bulk:{bulk_id}", now=now)
            if before is not None:
                await asyncio.wait({before})
                if before.cancelled() or before.exception() or before.result() is None:
                    raise _NotAfter(bulk_id)
            row = await store.bulk_advance(
                conn, bulk_id, ids, results, cursor=cursor, owner=self.owner,
                lease_until=now + self._lease, now=now,
            )  # fmt: skip
            if row is None:
                raise _NotAfter(bulk_id)
            return row

        try:
            # The page's transitions are children of this span, in the request's trace.
            with _tracer.start_as_current_span(
                f"bulk {job['kind']} page",
                context=parent,
                attributes={"invoctl.bulk_operation.id": bulk_id, "invoctl.page_size": size},
            ):
                return await db.transaction(self._pool, work)
        except _NotAfter:
            return None  # rolled back: nothing of it happened
        finally:
            if not read.done():
                read.set_result(None)

    async def _throttle(self, bulk_id: str, until: float) -> None:
        """Wait until `until` (monotonic) to hold max_per_second, renewing the lease."""
        while (left := until - time.monotonic()) > 0:
            await asyncio.sleep(min(left, self._lease.total_seconds() / 3))
            await db.statement(
                self._pool,
                lambda c: store.bulk_renew(
                    c, bulk_id, owner=self.owner, lease_until=self.lease_until()
                ),
            )
