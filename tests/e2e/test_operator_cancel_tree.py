"""A cancel of a call tree reaches the leaves first and flows back up (DESIGN.md section 4):
a caller awaiting an in-tree callee waits for it to end, its call entry records the
callee's real outcome, and only then does it see InvocationCancelled at that await. So
the leaf compensates first, then each caller in turn."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from invoctl.sdk import (
    Context,
    InvocationCancelled,
    ObjectContext,
    Service,
    TerminalError,
    VirtualObject,
    Worker,
)
from invoctl.v1 import invocation_pb2 as pb
from invoctl.v1 import workers_pb2 as wpb
from tests.e2e import _raw
from tests.e2e._helpers import FAST_RETRY, wait_state
from tests.e2e._operator import assert_history_is_a_chain, callee_of, start_call_tree

S = pb
CALL, CANCEL, RUN, SLEEP = (
    S.JOURNAL_ENTRY_KIND_CALL,
    S.JOURNAL_ENTRY_KIND_CANCEL,
    S.JOURNAL_ENTRY_KIND_RUN,
    S.JOURNAL_ENTRY_KIND_SLEEP,
)
SUSPENDED = S.INVOCATION_STATE_SUSPENDED

Body = Callable[[Context], Awaitable[Any]]


def tree(events: list[str], leaf: Body, *, middle_hiccup: bool = False) -> list[Service]:
    """Root --call--> Middle --call--> Leaf. Root and Middle compensate in a ctx.run when
    cancelled and pass the cancellation on; `leaf` decides what the leaf does. With
    `middle_hiccup`, Middle's first compensating attempt fails after its step, so a retry
    replays Middle's journal from the cancelled call on."""

    def compensating(name: str, body: Body) -> Body:
        async def handler(ctx: Context) -> Any:
            try:
                return await body(ctx)
            except InvocationCancelled:
                await ctx.run("compensate", events.append, f"{name} compensated")
                if middle_hiccup and name == "Middle" and f"{name} hiccup" not in events:
                    events.append(f"{name} hiccup")
                    raise RuntimeError("compensation hiccup") from None
                raise

        return handler

    async def root(ctx: Context) -> Any:
        return await ctx.call("Middle", "relay")

    async def middle(ctx: Context) -> Any:
        result = await ctx.call("Leaf", "work")
        # Not reached once cancelled, whatever the leaf returned: the call's await raises.
        await ctx.run("after the call", events.append, "Middle went on")
        return result

    services = []
    for name, handler, body in (("Root", "start", root), ("Middle", "relay", middle)):
        svc = Service(name, retry_policy=FAST_RETRY)
        svc.handler(name=handler)(compensating(name, body))
        services.append(svc)
    leaf_svc = Service("Leaf")
    leaf_svc.handler(name="work")(leaf)
    return [*services, leaf_svc]


def blocked_leaf(events: list[str], release: asyncio.Event, ending: str) -> Body:
    """A leaf inside a long step when the cancel comes; it compensates at its next await
    and then re-raises the cancellation, returns a value, or fails with its own error."""

    async def leaf(ctx: Context) -> str:
        try:
            await ctx.run("wait", release.wait)
            # The cancel's signal may still be on its way to the worker when the step ends;
            # a sleep that suspends with a cancel pending is cut short, so it raises here.
            await ctx.sleep(3600)
            await ctx.run("finish", events.append, "Leaf finished")
            return "leaf done"
        except InvocationCancelled:
            await ctx.run("compensate", events.append, "Leaf compensated")
            if ending == "value":
                return "refunded"
            if ending == "failure":
                raise TerminalError("the refund bounced", "REFUND_BOUNCED") from None
            raise

    return leaf


async def journal_of(client, inv_id: str) -> list[pb.JournalEntry]:
    return list((await client.get_journal(inv_id)).entries)


def compensation_time(entries: list[pb.JournalEntry]):
    [step] = [e for e in entries if (e.kind, e.name) == (RUN, "compensate")]
    return step.created_at.ToDatetime()


def assert_cancelled(inv: pb.Invocation) -> None:
    assert (inv.state, inv.outcome) == (S.INVOCATION_STATE_COMPLETED, S.OUTCOME_CANCELLED), inv
    assert inv.failure.code == "CANCELLED"


def assert_raised_at_the_call(entries: list[pb.JournalEntry]) -> pb.JournalEntry:
    """The caller's journal: its call entry, then the cancel it saw at that call's await
    (not at a later one), then its compensation. Returns the call entry."""
    assert [(e.kind, e.name) for e in entries] == [
        (CALL, ""),
        (CANCEL, "await"),
        (RUN, "compensate"),
    ], entries
    call, cancel, _ = entries
    assert call.completed
    assert cancel.failure.code == "CANCELLED"
    return call


@pytest.mark.parametrize("ending", ["re-raises", "value", "failure"])
async def test_cancel_reaches_the_leaf_first_and_flows_back_up(server, client, op, ending):
    release, events = asyncio.Event(), []
    try:
        async with Worker(
            tree(events, blocked_leaf(events, release, ending)), server=server.address
        ):
            root, middle, leaf = await start_call_tree(client)
            await wait_state(client, middle, SUSPENDED)
            await wait_state(client, root, SUSPENDED)

            await op.cancel(root, reason="order withdrawn")
            # The callers wait for their callees: nothing is interrupted but the leaf.
            for inv_id in (root, middle):
                inv = await client.get_invocation(inv_id)
                assert inv.state == SUSPENDED and inv.HasField("cancelled_at"), inv
            assert (await client.get_invocation(leaf)).state == S.INVOCATION_STATE_RUNNING
            assert events == []

            release.set()
            done_leaf = await client.attach(leaf)
            done_middle = await client.attach(middle)
            done_root = await client.attach(root)
    finally:
        release.set()
    assert events == ["Leaf compensated", "Middle compensated", "Root compensated"]

    # The leaf ends as its handler says: a caught cancellation may end in a value.
    if ending == "value":
        assert (done_leaf.outcome, done_leaf.output) == (S.OUTCOME_SUCCEEDED, '"refunded"')
    elif ending == "failure":
        assert (done_leaf.outcome, done_leaf.failure.code) == (S.OUTCOME_FAILED, "REFUND_BOUNCED")
    else:
        assert_cancelled(done_leaf)
    # Its caller's call entry holds that real outcome, and the caller still ended cancelled.
    call = assert_raised_at_the_call(await journal_of(client, middle))
    assert call.callee_invocation_id == leaf
    if ending == "value":
        assert (call.value, call.HasField("failure")) == ('"refunded"', False)
    else:
        assert (call.failure.code, call.failure.message) == (
            done_leaf.failure.code,
            done_leaf.failure.message,
        )
    assert_cancelled(done_middle)
    root_call = assert_raised_at_the_call(await journal_of(client, root))
    assert root_call.callee_invocation_id == middle
    assert (root_call.failure.code, root_call.failure.message) == (
        done_middle.failure.code,
        done_middle.failure.message,
    )
    assert_cancelled(done_root)

    # Compensation ran leaves first, as the journals' clocks say too.
    times = [compensation_time(await journal_of(client, i)) for i in (leaf, middle, root)]
    assert times == sorted(times), times
    for inv_id in (root, middle, leaf):
        steps = (await client.get_journal(inv_id)).transitions
        assert_history_is_a_chain(list(steps))
    # A caller stays suspended through the cancel and wakes when its callee ends.
    middle_events = [t.event for t in (await client.get_journal(middle)).transitions]
    assert middle_events[-5:] == ["suspended", "cancelled", "woken", "claimed", "completed"]


async def test_a_sleeping_leaf_is_woken_at_once_and_compensates_first(server, client, op):
    events: list[str] = []

    async def sleeping_leaf(ctx: Context) -> str:
        try:
            await ctx.sleep(3600)
        except InvocationCancelled:
            await ctx.run("compensate", events.append, "Leaf compensated")
            raise
        return "rested"

    async with Worker(tree(events, sleeping_leaf), server=server.address):
        root = await client.send("Root", "start")
        middle = await callee_of(client, root)
        leaf = await callee_of(client, middle)
        for inv_id in (leaf, middle, root):
            await wait_state(client, inv_id, SUSPENDED)
        await op.cancel(root)
        # Woken now, not in an hour: the whole tree ends within the attach deadline.
        done = [await client.attach(i) for i in (leaf, middle, root)]
    for inv in done:
        assert_cancelled(inv)
    assert events == ["Leaf compensated", "Middle compensated", "Root compensated"]
    sleep, *_ = await journal_of(client, leaf)
    assert (sleep.kind, sleep.completed, sleep.failure.code) == (SLEEP, True, "CANCELLED")
    call = assert_raised_at_the_call(await journal_of(client, middle))
    assert call.failure.code == "CANCELLED"


async def test_a_caller_replays_the_cancel_at_the_call_and_keeps_the_real_result(
    server, client, op
):
    """Middle's compensation fails once: its retry replays the call, whose entry holds the
    leaf's real value, raises the cancellation at that same await again and replays the
    finished compensation step instead of running it. A restart of Middle from the call
    (before the cancel) replays that real value."""
    release, events = asyncio.Event(), []
    services = tree(events, blocked_leaf(events, release, "value"), middle_hiccup=True)
    try:
        async with Worker(services, server=server.address):
            root, middle, leaf = await start_call_tree(client)
            await wait_state(client, root, SUSPENDED)
            await op.cancel(root)
            release.set()
            done = [await client.attach(i) for i in (leaf, middle, root)]

            restarted = await op.restart(middle, from_entry=1)
            again = await client.attach(restarted.id)
    finally:
        release.set()
    assert done[0].outcome == S.OUTCOME_SUCCEEDED
    for inv in done[1:]:
        assert_cancelled(inv)
    assert done[1].attempt_count == 3  # the call, the compensation, its retry
    assert done[1].last_failure.message == "RuntimeError: compensation hiccup"
    # The compensation step ran once, the code after the call never (also not on replay).
    assert events == ["Leaf compensated", "Middle compensated", "Middle hiccup",
                      "Root compensated", "Middle went on"]  # fmt: skip
    call = assert_raised_at_the_call(await journal_of(client, middle))
    assert call.value == '"refunded"'
    # The restarted Middle was cancelled by nobody: its replayed call returns the value.
    assert (again.outcome, again.output) == (S.OUTCOME_SUCCEEDED, '"refunded"')
    assert not again.HasField("cancelled_at")


async def test_a_call_made_after_the_cancel_reaches_a_callee_cancelled_at_once(
    server, client, op, workers
):
    """The cancel is on its way to the worker when the handler makes a call: the callee is
    part of the cancelled tree and has not started, so it completes cancelled at once and
    the call entry records that (a raw worker, which ignores the cancel signal)."""
    deployment = await _raw.register(workers)
    raw = _raw.RawSession(workers, deployment, "raw")
    await raw.open(heartbeat=True)
    try:
        caller = await client.send("Raw", "work")
        start = (await raw.read("attempt")).attempt
        assert start.invocation_id == caller and not start.cancelled
        await op.cancel(caller)
        signal = (await raw.read("signal")).signal
        assert signal.kind == wpb.SIGNAL_KIND_CANCEL
        target = pb.Target(service="Raw", handler="work")
        entry = pb.JournalEntry(index=0, kind=CALL, target=target, argument="null")
        ack = await raw.request(
            append=wpb.JournalAppend(invocation_id=caller, attempt=start.attempt, entries=[entry])
        )
        assert not ack.error_reason, ack
        [stored] = ack.entries
        assert stored.completed and stored.failure.code == "CANCELLED", stored
        callee = await client.get_invocation(stored.callee_invocation_id)
        assert_cancelled(callee)
        assert callee.caller_id == caller and callee.attempt_count == 0
        assert (await client.get_invocation(caller)).state == S.INVOCATION_STATE_RUNNING
    finally:
        await raw.close()


async def test_a_callee_that_has_not_started_ends_at_once_and_wakes_its_caller(
    server, client, op, db
):
    """The callee waits behind its object key: it completes cancelled at once, its caller
    records that and sees the cancellation at the call; the key's holder is untouched."""
    release, events = asyncio.Event(), []
    seat = VirtualObject("Seat")

    @seat.handler()
    async def hold(ctx: ObjectContext) -> str:
        await ctx.run("hold", release.wait)
        return "held"

    booker = Service("Booker")

    @booker.handler()
    async def book(ctx: Context) -> str:
        try:
            return await ctx.call("Seat", "hold", key="s1")
        except InvocationCancelled:
            await ctx.run("compensate", events.append, "Booker compensated")
            raise

    try:
        async with Worker([seat, booker], server=server.address):
            holder = await client.send("Seat", "hold", key="s1")
            await wait_state(client, holder, S.INVOCATION_STATE_RUNNING)
            caller = await client.send("Booker", "book")
            callee = await callee_of(client, caller)
            await wait_state(client, callee, S.INVOCATION_STATE_PENDING)
            await wait_state(client, caller, SUSPENDED)
            await op.cancel(caller)
            assert_cancelled(await client.attach(caller))
            assert_cancelled(await client.get_invocation(callee))
            assert (await client.get_invocation(holder)).state == S.INVOCATION_STATE_RUNNING
            release.set()
            assert (await client.attach(holder)).output == '"held"'
    finally:
        release.set()
    assert events == ["Booker compensated"]
    call = assert_raised_at_the_call(await journal_of(client, caller))
    assert (call.callee_invocation_id, call.failure.code) == (callee, "CANCELLED")
    assert await db.fetchval("SELECT count(*) FROM object_locks") == 0
