"""KillInvocation: any not-completed invocation and its call tree become completed/killed
at once; a running attempt is fenced; the object key passes on (DESIGN.md section 4)."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import grpc
import pytest

from invoctl.client import state_name
from invoctl.sdk import Context, ObjectContext, Service, TerminalError, VirtualObject, Worker
from invoctl.v1 import invocation_pb2 as pb
from invoctl.v1 import workers_pb2 as wpb
from invoctl_server.domain.ids import new_invocation_id
from tests.e2e._helpers import history, wait_state
from tests.e2e._operator import (
    NOT_COMPLETED,
    OPERATOR,
    Lab,
    assert_history_is_a_chain,
    callee_of,
    start_call_tree,
    transitions,
)
from tests.e2e._raw import RawSession, register
from tests.support import wait_for

COMPLETED = pb.INVOCATION_STATE_COMPLETED


def assert_killed(inv: pb.Invocation) -> None:
    assert (inv.state, inv.outcome) == (COMPLETED, pb.OUTCOME_KILLED), inv
    assert inv.failure.code == "KILLED"
    assert inv.HasField("completed_at")


@pytest.mark.parametrize("state", NOT_COMPLETED, ids=state_name)
async def test_kill_completes_any_not_completed_invocation_as_killed(server, client, op, state):
    async with Lab(server.address, client) as lab:
        inv_id = await lab.make(state)
        killed = await op.kill(inv_id, reason="operator test")
        assert killed.id == inv_id
        assert_killed(killed)
        assert_killed(await client.get_invocation(inv_id))
        steps = await transitions(client, inv_id)
        assert_history_is_a_chain(steps)
        last = steps[-1]
        assert (last.from_state, last.to_state, last.event, last.actor) == (
            state,
            COMPLETED,
            "killed",
            OPERATOR,
        )
        # Completed for good: a second kill is refused, and nothing else happened.
        err = await op.refused("KillInvocation", inv_id)
        assert (err.code, err.reason) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "INVALID_STATE_TRANSITION",
        )
        assert err.metadata["state"] == "completed"
        assert len(await transitions(client, inv_id)) == len(steps)


def tree_services(release: asyncio.Event, seen: dict[str, Any]) -> list[Service]:
    """Root --call--> Middle --call--> Leaf (blocks); Root also sends to Detached."""
    root = Service("Root")

    @root.handler()
    async def start(ctx: Context) -> str:
        ctx.send("Detached", "work")
        return await ctx.call("Middle", "relay")

    middle = Service("Middle")

    @middle.handler()
    async def relay(ctx: Context) -> str:
        return await ctx.call("Leaf", "work")

    @middle.handler()
    async def observe(ctx: Context) -> dict[str, str]:
        # The caller of a killed callee: its call fails terminally, and it carries on.
        try:
            await ctx.call("Leaf", "work")
        except TerminalError as err:
            seen["caller saw"] = err.code
            return {"code": err.code, "message": err.message}
        return {"code": "none"}

    leaf = Service("Leaf")

    @leaf.handler()
    async def work(ctx: Context) -> str:
        await ctx.run("wait", release.wait)
        return "leaf done"

    detached = Service("Detached")

    @detached.handler(name="work")
    async def work_detached(ctx: Context) -> str:
        await ctx.run("wait", release.wait)
        return "detached done"

    return [root, middle, leaf, detached]


async def test_kill_propagates_down_the_call_tree_but_not_to_sends(server, client, op):
    release = asyncio.Event()
    try:
        async with Worker(tree_services(release, {}), server=server.address):
            root, middle, leaf = await start_call_tree(client)
            await wait_state(client, middle, pb.INVOCATION_STATE_SUSPENDED)
            await wait_state(client, root, pb.INVOCATION_STATE_SUSPENDED)
            [detached], _ = await client.list_invocations(service="Detached")
            await wait_state(client, detached.id, pb.INVOCATION_STATE_RUNNING)

            assert_killed(await op.kill(root))
            for inv_id, was in (
                (root, pb.INVOCATION_STATE_SUSPENDED),
                (middle, pb.INVOCATION_STATE_SUSPENDED),
                (leaf, pb.INVOCATION_STATE_RUNNING),
            ):
                assert_killed(await client.get_invocation(inv_id))
                steps = await transitions(client, inv_id)
                assert_history_is_a_chain(steps)
                assert (steps[-1].from_state, steps[-1].event, steps[-1].actor) == (
                    was,
                    "killed",
                    OPERATOR,
                ), inv_id
            # The one-way send is detached: it still runs, and finishes.
            assert (await client.get_invocation(detached.id)).state == pb.INVOCATION_STATE_RUNNING
            release.set()
            done = await client.attach(detached.id)
            assert (done.outcome, done.output) == (pb.OUTCOME_SUCCEEDED, '"detached done"')
    finally:
        release.set()
    # The killed ones stay killed after their handlers were let go.
    for inv_id in (root, middle, leaf):
        assert_killed(await client.get_invocation(inv_id))


async def test_killing_a_callee_fails_the_callers_call_with_killed(server, client, op):
    release = asyncio.Event()
    seen: dict[str, Any] = {}
    try:
        async with Worker(tree_services(release, seen), server=server.address):
            caller = await client.send("Middle", "observe")
            leaf = await callee_of(client, caller)
            await wait_state(client, leaf, pb.INVOCATION_STATE_RUNNING)
            assert_killed(await op.kill(leaf, reason="stuck leaf"))
            done = await client.attach(caller)
    finally:
        release.set()
    assert seen["caller saw"] == "KILLED"
    assert done.outcome == pb.OUTCOME_SUCCEEDED
    assert '"code": "KILLED"' in done.output
    journal = await client.get_journal(caller)
    [call] = [e for e in journal.entries if e.kind == pb.JOURNAL_ENTRY_KIND_CALL]
    assert call.completed and call.callee_invocation_id == leaf
    assert call.failure.code == "KILLED"
    assert_history_is_a_chain(list(journal.transitions))


async def test_killed_running_attempt_never_journals_its_step(server, client, op):
    release = asyncio.Event()
    events: list[str] = []
    svc = Service("Blocked")

    @svc.handler()
    async def work(ctx: Context) -> str:
        await ctx.run("first", lambda: "one")

        async def step() -> str:
            events.append("step entered")
            await release.wait()
            events.append("step returned")
            return "two"

        try:
            await ctx.run("second", step)
        except BaseException as err:
            events.append(f"run raised {type(err).__name__}")
            raise
        events.append("after the step")
        return "finished"

    try:
        async with Worker([svc], server=server.address):
            inv_id = await client.send("Blocked", "work")
            await wait_for(lambda: _true("step entered" in events), what="the step to start")
            assert_killed(await op.kill(inv_id))
            release.set()
            await wait_for(
                lambda: _true(any(e.startswith("run raised") for e in events)),
                what="the aborted attempt to unwind",
            )
    finally:
        release.set()
    assert "after the step" not in events
    journal = await client.get_journal(inv_id)
    assert [e.name for e in journal.entries] == ["first"]
    assert_killed(journal.invocation)
    assert [e for _, _, e in await history(client, inv_id)][-1] == "killed"


async def _true(value: bool) -> bool:
    return value


async def test_writes_of_a_killed_attempt_are_refused(workers, client, op, db):
    session = RawSession(workers, await register(workers), "raw")
    try:
        await session.open(heartbeat=True)
        inv_id = await client.send("Raw", "work")
        start = (await session.read("attempt")).attempt
        entry = pb.JournalEntry(index=0, kind=pb.JOURNAL_ENTRY_KIND_RUN, name="s", value="1")
        ack = await session.request(
            append=wpb.JournalAppend(invocation_id=inv_id, attempt=start.attempt, entries=[entry])
        )
        assert ack.error_reason == ""

        assert_killed(await op.kill(inv_id))
        # The server tells the session; then anything the attempt sends is refused.
        signal = (await session.read("signal")).signal
        assert (signal.invocation_id, signal.attempt, signal.kind) == (
            inv_id,
            start.attempt,
            wpb.SIGNAL_KIND_KILL,
        )
        late = pb.JournalEntry(index=1, kind=pb.JOURNAL_ENTRY_KIND_RUN, name="t", value="2")
        for kind, body in {
            "append": wpb.JournalAppend(
                invocation_id=inv_id, attempt=start.attempt, entries=[late]
            ),
            "complete": wpb.AttemptComplete(
                invocation_id=inv_id, attempt=start.attempt, output='"late"'
            ),
        }.items():
            ack = await session.request(**{kind: body})
            assert ack.error_reason == "STALE_ATTEMPT", kind
    finally:
        await session.close()
    journal = await client.get_journal(inv_id)
    assert [e.name for e in journal.entries] == ["s"]
    assert_killed(journal.invocation)
    assert journal.invocation.output == ""


def holder_object(release: asyncio.Event, ran: list[str]) -> VirtualObject:
    obj = VirtualObject("Holder")

    @obj.handler()
    async def take(ctx: ObjectContext, label: str) -> str:
        ran.append(label)
        if label == "holder":
            await ctx.run("wait", release.wait)
        return label

    return obj


async def test_killing_the_key_holder_lets_the_next_pending_run(server, client, op, db):
    release = asyncio.Event()
    ran: list[str] = []
    try:
        async with Worker([holder_object(release, ran)], server=server.address):
            holder = await client.send("Holder", "take", "holder", key="k")
            await wait_state(client, holder, pb.INVOCATION_STATE_RUNNING)
            waiting = await client.send("Holder", "take", "next", key="k")
            assert (await client.get_invocation(waiting)).state == pb.INVOCATION_STATE_PENDING

            assert_killed(await op.kill(holder))
            done = await client.attach(waiting)
    finally:
        release.set()
    assert (done.outcome, done.output) == (pb.OUTCOME_SUCCEEDED, '"next"')
    assert ran == ["holder", "next"]
    assert await history(client, waiting) == [
        ("", "pending", "accepted"),
        ("pending", "ready", "key_acquired"),
        ("ready", "running", "claimed"),
        ("running", "completed", "completed"),
    ]
    assert await db.fetchval("SELECT count(*) FROM object_locks") == 0


async def test_a_call_made_while_the_kill_waited_for_its_lock_is_killed_too(
    server, client, op, database, db
):
    """The kill reads the tree and locks it in one statement. A target that called
    between that statement's snapshot and its lock has a longer journal once locked: the
    kill walks the tree again and takes the new callee with it."""
    async with Lab(server.address, client) as lab:
        target = await lab.make(pb.INVOCATION_STATE_RUNNING)
        holder = await asyncpg.connect(database)
        try:
            tx = holder.transaction()
            await tx.start()
            row = await holder.fetchrow(
                "SELECT * FROM invocations WHERE id = $1 FOR UPDATE", target
            )
            kill = asyncio.create_task(op.kill(target))

            async def waiting() -> bool:
                return bool(await db.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND datname = current_database()"
                ))  # fmt: skip

            await wait_for(waiting, what="the kill waiting for the target's lock")
            # What a call does in one transaction: journal it and create the callee.
            callee = new_invocation_id()
            await holder.execute(
                """
                INSERT INTO invocations (id, service, handler, exclusive, state, input,
                    deployment_id, caller_id, caller_entry, created_at, modified_at)
                VALUES ($1, 'Lab', 'echo', false, 'ready', 'null', $2, $3, $4, now(), now())
                """,
                callee, row["deployment_id"], target, row["journal_length"],
            )  # fmt: skip
            await holder.execute(
                "INSERT INTO journal_entries (invocation_id, idx, kind, completed, callee_id,"
                " created_at) VALUES ($1, $2, 'call', false, $3, now())",
                target, row["journal_length"], callee,
            )  # fmt: skip
            await holder.execute(
                "UPDATE invocations SET journal_length = journal_length + 1 WHERE id = $1",
                target,
            )
            await tx.commit()
        finally:
            await holder.close()
        assert_killed(await kill)
        assert_killed(await client.get_invocation(callee))
