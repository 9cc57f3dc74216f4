"""PauseInvocation: running and backing-off invocations stop until resumed; pausing a
paused one is a no-op (DESIGN.md section 4)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime

from invoctl.sdk import Context, RetryPolicy, Service, Worker
from invoctl.v1 import invocation_pb2 as pb
from tests.e2e._helpers import wait_state
from tests.e2e._operator import OPERATOR, Lab, assert_history_is_a_chain, transitions
from tests.support import wait_for

PAUSED = pb.INVOCATION_STATE_PAUSED


def marker() -> Service:
    """A trivial service: when its invocation completes, the worker and the server's
    loops have demonstrably made progress since it was sent."""
    svc = Service("Marker")

    @svc.handler()
    async def noop(ctx: Context) -> str:
        return "ok"

    return svc


async def test_pause_running_ends_the_attempt_and_keeps_its_journal(server, client, op):
    release = asyncio.Event()
    attempts: list[int] = []
    executed: Counter[str] = Counter()
    unwound = asyncio.Event()
    svc = Service("Pausable")

    @svc.handler()
    async def work(ctx: Context) -> list[str]:
        attempts.append(ctx.attempt)

        async def step(name: str) -> str:
            executed[name] += 1
            if name == "two" and ctx.attempt == 1:
                await release.wait()
            return f"{name}@{ctx.attempt}"

        try:
            one = await ctx.run("one", step, "one")
            two = await ctx.run("two", step, "two")
        except BaseException:
            unwound.set()
            raise
        return [one, two]

    try:
        async with Worker([svc, marker()], server=server.address):
            inv_id = await client.send("Pausable", "work")
            await wait_for(lambda: _true(executed["two"] == 1), what="step two to start")
            paused = await op.pause(inv_id, reason="look at it")
            assert (paused.id, paused.state, paused.attempt_count) == (inv_id, PAUSED, 1)
            assert paused.outcome == pb.OUTCOME_UNSPECIFIED

            # The step in flight finishes on the worker, but its result is dropped.
            release.set()
            await asyncio.wait_for(unwound.wait(), 10)
            journal = await client.get_journal(inv_id)
            assert [(e.name, e.value) for e in journal.entries] == [("one", '"one@1"')]

            # The worker keeps serving others; this one does not run again by itself.
            assert await client.invoke("Marker", "noop") == "ok"
            inv = await client.get_invocation(inv_id)
            assert (inv.state, inv.attempt_count) == (PAUSED, 1)
            assert attempts == [1]

            await op.resume(inv_id)
            done = await client.attach(inv_id)
    finally:
        release.set()

    # Attempt 2 replayed step one and ran step two live.
    assert (done.outcome, done.output) == (pb.OUTCOME_SUCCEEDED, '["one@1", "two@2"]')
    assert attempts == [1, 2]
    assert executed == {"one": 1, "two": 2}
    steps = await transitions(client, inv_id)
    assert_history_is_a_chain(steps)
    ops = [(t.from_state, t.to_state) for t in steps if t.actor == OPERATOR]
    assert ops == [
        (pb.INVOCATION_STATE_RUNNING, PAUSED),
        (PAUSED, pb.INVOCATION_STATE_READY),
    ]


async def _true(value: bool) -> bool:
    return value


async def test_pause_backing_off_cancels_the_retry_timer(server, client, op):
    runs: Counter[str] = Counter()
    fixed = {"yes": False}
    svc = Service("Retrying", retry_policy=RetryPolicy(initial_interval=0.5, max_interval=0.5))

    @svc.handler()
    async def work(ctx: Context) -> str:
        runs[ctx.invocation_id] += 1
        if not fixed["yes"]:
            raise RuntimeError("not yet")
        return "fixed"

    async with Worker([svc, marker()], server=server.address):
        inv_id = await client.send("Retrying", "work")
        backing_off = await wait_state(client, inv_id, pb.INVOCATION_STATE_BACKING_OFF)
        retry_at = backing_off.next_retry_at.ToDatetime(tzinfo=UTC)
        paused = await op.pause(inv_id)
        assert (paused.state, paused.attempt_count) == (PAUSED, 1)
        assert not paused.HasField("next_retry_at")

        # A marker scheduled after the cancelled retry time has run: the timer loop has
        # passed that time, and the paused invocation did not retry.
        delay = (retry_at - datetime.now(UTC)).total_seconds() + 0.5
        marker_id = await client.send("Marker", "noop", delay=max(delay, 0.5))
        assert (await client.attach(marker_id)).outcome == pb.OUTCOME_SUCCEEDED
        assert datetime.now(UTC) > retry_at
        inv = await client.get_invocation(inv_id)
        assert (inv.state, inv.attempt_count) == (PAUSED, 1)
        assert runs[inv_id] == 1

        fixed["yes"] = True
        await op.resume(inv_id)
        done = await client.attach(inv_id)
    assert (done.outcome, done.output, done.attempt_count) == (
        pb.OUTCOME_SUCCEEDED,
        '"fixed"',
        2,
    )
    steps = await transitions(client, inv_id)
    assert_history_is_a_chain(steps)
    assert [(t.from_state, t.to_state) for t in steps if t.actor == OPERATOR] == [
        (pb.INVOCATION_STATE_BACKING_OFF, PAUSED),
        (PAUSED, pb.INVOCATION_STATE_READY),
    ]


async def test_pause_paused_is_a_no_op(server, client, op, db):
    async with Lab(server.address, client) as lab:
        inv_id = await lab.make(PAUSED)
        before = await transitions(client, inv_id)
        row = await db.fetchrow("SELECT * FROM invocations WHERE id = $1", inv_id)
        again = await op.pause(inv_id, reason="twice")
        assert (again.id, again.state) == (inv_id, PAUSED)
        assert await transitions(client, inv_id) == before
        assert await db.fetchrow("SELECT * FROM invocations WHERE id = $1", inv_id) == row
