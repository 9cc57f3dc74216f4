"""CancelInvocation: what has not started completes cancelled at once; a started handler
sees InvocationCancelled at its next await, may compensate, and completes cancelled; the
cancel reaches the whole call tree but not one-way sends (DESIGN.md section 4)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from invoctl.client import state_name
from invoctl.sdk import (
    Context,
    InvocationCancelled,
    ObjectContext,
    RetryPolicy,
    Service,
    TerminalError,
    VirtualObject,
    Worker,
)
from invoctl.v1 import invocation_pb2 as pb
from tests.e2e._helpers import FAST_RETRY, history, wait_state
from tests.e2e._operator import (
    NOT_COMPLETED,
    OPERATOR,
    Lab,
    assert_history_is_a_chain,
    assert_wrong_state,
    callee_of,
    start_call_tree,
    transitions,
)
from tests.support import wait_for

S = pb
COMPLETED = S.INVOCATION_STATE_COMPLETED
CANCEL = S.JOURNAL_ENTRY_KIND_CANCEL
RUN = S.JOURNAL_ENTRY_KIND_RUN

# What the cancel RPC leaves an invocation in, by the state it found it in.
CANCEL_LEAVES = {
    S.INVOCATION_STATE_PENDING: COMPLETED,
    S.INVOCATION_STATE_SCHEDULED: COMPLETED,
    S.INVOCATION_STATE_READY: COMPLETED,  # never attempted
    S.INVOCATION_STATE_RUNNING: S.INVOCATION_STATE_RUNNING,  # signalled
    S.INVOCATION_STATE_BACKING_OFF: S.INVOCATION_STATE_READY,  # retries now
    S.INVOCATION_STATE_SUSPENDED: S.INVOCATION_STATE_READY,  # woken
    S.INVOCATION_STATE_PAUSED: S.INVOCATION_STATE_READY,  # resumed
}


def assert_cancelled(inv: pb.Invocation) -> None:
    assert (inv.state, inv.outcome) == (COMPLETED, S.OUTCOME_CANCELLED), inv
    assert inv.failure.code == "CANCELLED"
    assert inv.HasField("cancelled_at") and inv.HasField("completed_at")


@pytest.mark.parametrize("state", NOT_COMPLETED, ids=state_name)
async def test_cancel_acts_on_every_not_completed_state(server, client, op, state):
    async with Lab(server.address, client) as lab:
        inv_id = await lab.make(state)
        cancelled = await op.cancel(inv_id, reason="operator test")
        assert cancelled.id == inv_id
        assert cancelled.state == CANCEL_LEAVES[state]
        assert cancelled.HasField("cancelled_at")
        if CANCEL_LEAVES[state] == COMPLETED:
            # Not started: completed at once, and it stays visible (no vanishing).
            assert_cancelled(cancelled)
            assert_cancelled(await client.get_invocation(inv_id))
            err = await op.refused("CancelInvocation", inv_id)
            assert_wrong_state(err, inv_id, COMPLETED)
        steps = await transitions(client, inv_id)
        assert_history_is_a_chain(steps)
        [by_operator] = [t for t in steps if t.actor == OPERATOR]
        assert (by_operator.from_state, by_operator.to_state, by_operator.event) == (
            state,
            CANCEL_LEAVES[state],
            "cancelled",
        )


def compensating_service(release: asyncio.Event, events: list[str]) -> Service:
    svc = Service("Booking")

    def record(event: str) -> str:
        events.append(event)
        return event

    @svc.handler()
    async def book(ctx: Context) -> str:
        await ctx.run("reserve", record, "reserve")
        try:
            await ctx.run("wait", release.wait)  # cancelled while in here
            await ctx.run("charge", record, "charge")  # its next await: raises
            return "booked"
        except InvocationCancelled:
            await ctx.run("unreserve", record, "unreserve")
            raise

    @svc.handler()
    async def nap(ctx: Context) -> str:
        try:
            await ctx.sleep(3600)
        except InvocationCancelled as cancelled:
            await ctx.run("undo nap", record, "undo nap")
            raise TerminalError(f"compensated: {cancelled.message}", cancelled.code) from None
        return "rested"

    return svc


async def test_cancel_running_raises_at_the_next_await_and_compensates(server, client, op):
    release, events = asyncio.Event(), []
    try:
        async with Worker([compensating_service(release, events)], server=server.address):
            inv_id = await client.send("Booking", "book")
            await wait_for(lambda: _true(events == ["reserve"]), what="the first step")
            await wait_state(client, inv_id, S.INVOCATION_STATE_RUNNING)
            cancelled = await op.cancel(inv_id, reason="customer changed their mind")
            # The RPC does not wait for the handler.
            assert cancelled.state == S.INVOCATION_STATE_RUNNING
            assert cancelled.HasField("cancelled_at")
            release.set()
            done = await client.attach(inv_id)
    finally:
        release.set()
    assert_cancelled(done)
    assert events == ["reserve", "unreserve"]  # charge never ran
    journal = await client.get_journal(inv_id)
    assert [(e.kind, e.name) for e in journal.entries] == [
        (RUN, "reserve"),
        (RUN, "wait"),
        (CANCEL, ""),
        (RUN, "unreserve"),
    ]
    assert journal.entries[2].failure.code == "CANCELLED"
    assert await history(client, inv_id) == [
        ("", "ready", "accepted"),
        ("ready", "running", "claimed"),
        ("running", "running", "cancelled"),
        ("running", "completed", "completed"),
    ]


async def test_cancel_suspended_wakes_it_to_compensate(server, client, op):
    events: list[str] = []
    async with Worker([compensating_service(asyncio.Event(), events)], server=server.address):
        inv_id = await client.send("Booking", "nap")
        await wait_state(client, inv_id, S.INVOCATION_STATE_SUSPENDED)
        await op.cancel(inv_id)
        done = await client.attach(inv_id)
    assert_cancelled(done)
    assert done.failure.message == "compensated: cancelled by an operator"
    assert events == ["undo nap"]
    journal = await client.get_journal(inv_id)
    sleep = journal.entries[0]
    assert (sleep.kind, sleep.completed, sleep.failure.code) == (
        S.JOURNAL_ENTRY_KIND_SLEEP,
        True,
        "CANCELLED",
    )
    assert [e for _, _, e in await history(client, inv_id)] == [
        "accepted",
        "claimed",
        "suspended",
        "cancelled",
        "claimed",
        "completed",
    ]


def retrying_service(events: list[str]) -> Service:
    svc = Service("Flaky")

    async def first_attempt_fails(ctx: Context) -> str:
        if ctx.attempt == 1:
            raise RuntimeError("first attempt fails")
        await ctx.run("step", lambda: events.append(f"step {ctx.invocation_id}"))
        return "done"

    # Backs off for an hour after its first attempt.
    svc.handler(name="slow", retry_policy=RetryPolicy(initial_interval=3600, max_interval=3600))(
        first_attempt_fails
    )
    # Pauses after its first attempt.
    svc.handler(name="once", retry_policy=RetryPolicy(max_attempts=1))(first_attempt_fails)
    return svc


@pytest.mark.parametrize(
    ("handler", "state"),
    [("slow", S.INVOCATION_STATE_BACKING_OFF), ("once", S.INVOCATION_STATE_PAUSED)],
    ids=["backing-off", "paused"],
)
async def test_cancel_backing_off_or_paused_runs_it_now_to_see_the_cancel(
    server, client, op, handler, state
):
    events: list[str] = []
    async with Worker([retrying_service(events)], server=server.address):
        inv_id = await client.send("Flaky", handler)
        await wait_state(client, inv_id, state)
        await op.cancel(inv_id)
        done = await client.attach(inv_id)
    assert_cancelled(done)
    assert done.attempt_count == 2
    assert events == []  # the cancel came first, at the step's await
    steps = await history(client, inv_id)
    assert steps[-3:] == [
        (state_name(state), "ready", "cancelled"),
        ("ready", "running", "claimed"),
        ("running", "completed", "completed"),
    ]


async def test_a_cancel_is_delivered_once_and_replayed_where_it_was_seen(server, client, op):
    """The compensation fails once: the retry replays the journal, raises the cancel at
    the same await again, and does not run the finished compensation step again."""
    release, events = asyncio.Event(), []
    svc = Service("Careful")
    failed_once: list[bool] = []

    @svc.handler(retry_policy=FAST_RETRY)
    async def work(ctx: Context) -> str:
        await ctx.run("wait", release.wait)
        try:
            await ctx.run("never", events.append, "never")
        except InvocationCancelled:
            await ctx.run("undo", events.append, f"undo in attempt {ctx.attempt}")
            if not failed_once:
                failed_once.append(True)
                raise RuntimeError("compensation hiccup") from None
            # A later await works as usual: the cancel was delivered once.
            await ctx.run("after", events.append, "after")
            raise
        return "not cancelled"

    try:
        async with Worker([svc], server=server.address):
            inv_id = await client.send("Careful", "work")
            await wait_state(client, inv_id, S.INVOCATION_STATE_RUNNING)
            await op.cancel(inv_id)
            # Cancelling again changes nothing: it was cancelled already.
            again = await op.cancel(inv_id)
            assert again.state == S.INVOCATION_STATE_RUNNING
            release.set()
            done = await client.attach(inv_id)
    finally:
        release.set()
    assert_cancelled(done)
    assert done.attempt_count == 2
    assert events == ["undo in attempt 1", "after"]
    kinds = [e.kind for e in (await client.get_journal(inv_id)).entries]
    assert kinds == [RUN, CANCEL, RUN, RUN]
    cancels = [t for t in await transitions(client, inv_id) if t.event == "cancelled"]
    assert len(cancels) == 1


def tree_services(release: asyncio.Event, events: list[str]) -> list[Service]:
    """Root --call--> Middle --call--> Leaf (running); Root also sends to Detached. Each
    compensates when cancelled and passes the cancellation on."""

    def compensating(name: str, body):
        async def handler(ctx: Context) -> Any:
            try:
                return await body(ctx)
            except InvocationCancelled:
                await ctx.run("compensate", events.append, f"{name} compensated")
                raise

        return handler

    async def root_body(ctx: Context) -> str:
        ctx.send("Detached", "work")
        return await ctx.call("Middle", "relay")

    async def middle_body(ctx: Context) -> str:
        return await ctx.call("Leaf", "work")

    async def leaf_body(ctx: Context) -> str:
        await ctx.run("wait", release.wait)
        # Raises the cancellation even if its signal has not reached the worker yet: a
        # sleep that suspends with a cancel pending is cut short.
        await ctx.sleep(3600)
        await ctx.run("finish", events.append, "leaf finished")
        return "leaf done"

    services = []
    for name, handler, body in (
        ("Root", "start", root_body),
        ("Middle", "relay", middle_body),
        ("Leaf", "work", leaf_body),
    ):
        svc = Service(name)
        svc.handler(name=handler)(compensating(name, body))
        services.append(svc)

    detached = Service("Detached")

    @detached.handler()
    async def work(ctx: Context) -> str:
        await ctx.run("wait", release.wait)
        return "detached done"

    return [*services, detached]


async def test_cancel_propagates_down_the_call_tree_but_not_to_sends(server, client, op):
    release, events = asyncio.Event(), []
    try:
        async with Worker(tree_services(release, events), server=server.address):
            root, middle, leaf = await start_call_tree(client)
            await wait_state(client, middle, S.INVOCATION_STATE_SUSPENDED)
            await wait_state(client, root, S.INVOCATION_STATE_SUSPENDED)
            [detached], _ = await client.list_invocations(service="Detached")

            await op.cancel(root, reason="bad deploy")
            # The leaf sees it at its next await; each caller once its callee ended.
            release.set()
            for inv_id in (leaf, middle, root):
                assert_cancelled(await client.attach(inv_id))
            done = await client.attach(detached.id)
            assert (done.outcome, done.output) == (S.OUTCOME_SUCCEEDED, '"detached done"')
            assert done.HasField("cancelled_at") is False
    finally:
        release.set()
    assert events == ["Leaf compensated", "Middle compensated", "Root compensated"]
    for inv_id in (root, middle, leaf):
        steps = await transitions(client, inv_id)
        assert_history_is_a_chain(steps)
        [by_operator] = [t for t in steps if t.actor == OPERATOR]
        assert by_operator.event == "cancelled", inv_id


async def test_cancelling_a_callee_fails_the_callers_call(server, client, op):
    """The caller was not cancelled: it sees InvocationCancelled from its call and may
    carry on; uncaught, it would end failed, not cancelled."""
    release = asyncio.Event()
    svc = Service("Caller")
    leaf = Service("Leaf")

    @leaf.handler()
    async def work(ctx: Context) -> str:
        await ctx.run("wait", release.wait)
        await ctx.run("finish", lambda: None)
        return "leaf done"

    @svc.handler()
    async def observe(ctx: Context) -> str:
        try:
            return await ctx.call("Leaf", "work")
        except InvocationCancelled as err:
            return f"callee {err.code}"

    try:
        async with Worker([svc, leaf], server=server.address):
            caller = await client.send("Caller", "observe")
            callee = await callee_of(client, caller)
            await wait_state(client, callee, S.INVOCATION_STATE_RUNNING)
            await op.cancel(callee)
            release.set()
            assert_cancelled(await client.attach(callee))
            done = await client.attach(caller)
    finally:
        release.set()
    assert (done.outcome, done.output) == (S.OUTCOME_SUCCEEDED, '"callee CANCELLED"')
    assert not done.HasField("cancelled_at")


async def test_cancelling_the_key_holder_compensates_then_passes_the_key(server, client, op, db):
    release, ran = asyncio.Event(), []
    obj = VirtualObject("Seat")

    @obj.handler()
    async def take(ctx: ObjectContext, label: str) -> str:
        ran.append(label)
        try:
            await ctx.run("hold", release.wait)
            await ctx.get("taken")
        except InvocationCancelled:
            ctx.set("released by", label)
            raise
        return label

    @obj.handler(shared=True)
    async def who(ctx: ObjectContext) -> Any:
        return await ctx.get("released by")

    try:
        async with Worker([obj], server=server.address):
            holder = await client.send("Seat", "take", "holder", key="s1")
            await wait_state(client, holder, S.INVOCATION_STATE_RUNNING)
            waiting = await client.send("Seat", "take", "waiting", key="s1")
            queued = await client.send("Seat", "take", "queued", key="s1")
            assert (await client.get_invocation(waiting)).state == S.INVOCATION_STATE_PENDING
            # A pending one completes at once; the holder keeps the key meanwhile.
            assert_cancelled(await op.cancel(waiting))
            await op.cancel(holder)
            release.set()
            assert_cancelled(await client.attach(holder))
            done = await client.attach(queued)
            released_by = await client.invoke("Seat", "who", key="s1")
    finally:
        release.set()
    assert (done.outcome, done.output) == (S.OUTCOME_SUCCEEDED, '"queued"')
    assert ran == ["holder", "queued"]
    assert released_by == "holder"
    assert await db.fetchval("SELECT count(*) FROM object_locks") == 0


async def _true(value: bool) -> bool:
    return value


async def test_concurrent_cancels_of_overlapping_call_trees(server, client, op):
    """Cancels of a root, its callee and the leaf at once (they may share a batch, where
    their trees overlap): each is cancelled exactly once, and all end cancelled."""
    release, events = asyncio.Event(), []
    try:
        async with Worker(tree_services(release, events), server=server.address):
            root, middle, leaf = await start_call_tree(client)
            await wait_state(client, root, S.INVOCATION_STATE_SUSPENDED)
            answers = await asyncio.gather(
                *(op.cancel(i) for i in (leaf, middle, root, middle, leaf))
            )
            assert {a.id for a in answers} == {root, middle, leaf}
            release.set()
            for inv_id in (root, middle, leaf):
                assert_cancelled(await client.attach(inv_id))
    finally:
        release.set()
    assert sorted(events) == ["Leaf compensated", "Middle compensated", "Root compensated"]
    for inv_id in (root, middle, leaf):
        steps = await transitions(client, inv_id)
        assert_history_is_a_chain(steps)
        assert len([t for t in steps if t.event == "cancelled"]) == 1, inv_id
