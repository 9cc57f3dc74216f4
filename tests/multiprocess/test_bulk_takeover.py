"""A bulk operation survives the server that runs it: killed with SIGKILL mid-job, the
operation is taken over by another server from its cursor, and no invocation is acted
on twice (DESIGN.md section 5)."""

from __future__ import annotations

import asyncio

from invoctl.client import Client, selector
from invoctl.v1 import bulk_pb2 as bpb
from tests.multiprocess._procs import register_steps
from tests.support import wait_for

INVOCATIONS = 8_000
CHUNK = 500


async def test_server_killed_mid_bulk_kill_is_taken_over_without_acting_twice(database, db, procs):
    first, second = await procs.servers(database, 2)
    await register_steps(first.address)  # nobody serves it: the invocations just wait
    async with Client(first.address) as a, Client(second.address) as b:
        for _ in range(INVOCATIONS // CHUNK):  # scheduled an hour from now
            await asyncio.gather(*(a.send("Steps", "work", 0, delay=3600) for _ in range(CHUNK)))
        # Throttled so that the kill lands mid-job, whatever this machine's speed.
        stream = a.bulk_operation("kill", selector("Steps/work"), max_per_second=1600)
        started = await anext(stream)
        bulk_id = started.bulk_operation_id
        assert started.matched == INVOCATIONS

        watched: list[bpb.BulkOperationProgress] = []

        async def watch() -> None:
            async for progress in b.watch_bulk_operation(bulk_id):
                watched.append(progress)

        watching = asyncio.create_task(watch())
        await wait_for(
            lambda: _true(bool(watched) and watched[-1].processed >= INVOCATIONS // 3),
            timeout=30, what="the first pages",
        )  # fmt: skip
        first.kill()
        await asyncio.wait_for(watching, 90)

    last = watched[-1]
    assert last.final and last.state == bpb.BULK_OPERATION_STATE_COMPLETED
    assert (last.matched, last.processed, last.succeeded) == (INVOCATIONS,) * 3
    assert (last.skipped, last.failed) == (0, 0)
    counts = [m.processed for m in watched]
    assert counts == sorted(counts) and counts[0] < INVOCATIONS
    owner = await db.fetchval("SELECT owner FROM bulk_operations WHERE id = $1", bulk_id)
    assert owner is not None and owner.startswith(f"server-{second.proc.pid} ")
    # Every invocation killed, each exactly once.
    assert (
        await db.fetchval("SELECT count(*) FROM invocations WHERE outcome = 'killed'")
        == INVOCATIONS
    )
    assert (
        await db.fetchval("SELECT count(*) FROM invocation_transitions WHERE event = 'killed'")
        == INVOCATIONS
    )
    assert (
        await db.fetchval(
            "SELECT count(DISTINCT invocation_id) FROM invocation_transitions"
            " WHERE event = 'killed' AND actor = $1",
            f"bulk:{bulk_id}",
        )
        == INVOCATIONS
    )


async def _true(value: bool) -> bool:
    return value
