"""A live worker never loses its leases under load (issue 12, point 2).

Thousands of attempts run at once on one worker process with a 2 s lease, each held
longer than the lease between two journal writes, so only the session's heart-beats keep
it. Their renewals race the batched appends and completions that lock the same rows. A
renewal that locked them outside ID order deadlocked and failed; renewals that queued
behind each other on those locks, or took seconds each, came too late: either way live
attempts lapsed (LEASE_EXPIRED) and ran again. INVOCTL_LEASE_ATTEMPTS sets how many."""

from __future__ import annotations

import asyncio
import os

from invoctl.client import Client
from invoctl.sdk import Worker
from tests.multiprocess._procs import deadlocks_so_far, disconnected
from tests.support import WorkerProcess, wait_for
from tests.workers import leases

COUNT = int(os.environ.get("INVOCTL_LEASE_ATTEMPTS", "2000"))
# Over twice the lease of the test servers (FAST: --lease-seconds 2).
HOLD_SECONDS = 5.0


async def test_heart_beats_keep_every_lease_of_a_busy_worker(database, db, procs):
    before = await deadlocks_so_far(db)
    server = await procs.server(database)
    registering = Worker(leases.services(), server.address)
    try:
        await registering.register()
    finally:
        await registering.stop()
    worker = WorkerProcess(
        "leases.py", server.address, "--name", "busy", "--max-concurrency", str(COUNT)
    ).start()
    try:
        async with Client(server.address) as client:
            ids: list[str] = []
            while len(ids) < COUNT:  # in bursts a channel takes
                burst = min(200, COUNT - len(ids))
                ids += await asyncio.gather(
                    *(client.send("Leases", "hold", HOLD_SECONDS) for _ in range(burst))
                )

        async def all_running() -> bool:
            running = await db.fetchval(
                "SELECT count(*) FROM invocations WHERE state = 'running' AND attempt = 1"
            )
            return running == COUNT

        # All at once: every lease depends on the heart-beats at the same time.
        await wait_for(all_running, timeout=30, what=f"{COUNT} attempts to run at once")

        async def all_completed() -> bool:
            done = await db.fetchval("SELECT count(*) FROM invocations WHERE state = 'completed'")
            return done == COUNT

        try:
            await wait_for(all_completed, timeout=40, what=f"{COUNT} invocations to complete")
        except AssertionError as exc:
            states = await db.fetch("SELECT state, count(*) FROM invocations GROUP BY 1")
            events = await db.fetch("SELECT event, count(*) FROM invocation_transitions GROUP BY 1")
            log = [line for line in server.output if "WARN" in line or "ERROR" in line]
            raise AssertionError(
                f"{exc}: states {states}, events {events}, server log: {log[:10]}"
            ) from None
    finally:
        worker.kill()
        server.stop()
    await disconnected(db)
    assert await deadlocks_so_far(db) == before, "the server's own writes deadlocked"

    lapsed = await db.fetch(
        "SELECT invocation_id, event, detail FROM invocation_transitions"
        " WHERE event IN ('lease_expired', 'attempt_failed') LIMIT 5"
    )
    assert not lapsed, f"attempts of a live worker lapsed or failed: {[dict(r) for r in lapsed]}"
    rows = await db.fetch(
        "SELECT outcome, attempt, count(*) AS n FROM invocations"
        " WHERE id = ANY($1::text[]) GROUP BY 1, 2",
        ids,
    )
    assert [tuple(r) for r in rows] == [("succeeded", 1, COUNT)]
