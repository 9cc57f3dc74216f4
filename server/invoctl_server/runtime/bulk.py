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

log = logging.getLogger("invoctl.bulk")
_tracer = trace.get_tracer("invoctl.server")

# Progress goes out at least 4 times a second while an operation runs (DESIGN.md section
# 5). The interval between sends leaves room for reading the row before each one and for
# a page's span work, which holds the event loop for up to ~150 ms.
WATCH_INTERVAL = 0.1


def _now() -> datetime:
    return datetime.now(UTC)


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
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), WATCH_INTERVAL)
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
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll)

    async def _run(self, job: asyncpg.Record) -> None:
        bulk_id, mps = job["id"], job["max_per_second"]
        size = self._page if mps <= 0 else max(1, min(self._page, int(mps * WATCH_INTERVAL)))
        parent = None
        if job["traceparent"]:
            parent = TraceContextTextMapPropagator().extract({"traceparent": job["traceparent"]})
        started, done_here, failures = time.monotonic(), 0, 0
        while True:
            try:
                # The page's transitions are children of this span, in the request's trace.
                with _tracer.start_as_current_span(
                    f"bulk {job['kind']} page",
                    context=parent,
                    attributes={"invoctl.bulk_operation.id": bulk_id, "invoctl.page_size": size},
                ):
                    now = _now()
                    row = await db.transaction(
                        self._pool,
                        lambda c, now=now: store.bulk_run_page(
                            c, bulk_id, owner=self.owner, size=size,
                            lease_until=now + self._lease, actor=f"bulk:{bulk_id}", now=now,
                        ),
                    )  # fmt: skip
            except asyncio.CancelledError:
                raise
            except Exception:
                failures += 1
                log.exception("a page of bulk operation %s failed; retrying", bulk_id)
                await asyncio.sleep(min(5.0, 0.1 * 2**failures))  # back off, then retry
                continue
            failures = 0
            if row is None or row["state"] != "running":
                return
            done_here += size
            if mps > 0:
                await self._throttle(bulk_id, started + done_here / mps)

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
