"""RestartInvocationAsNew: a completed invocation starts again as a new one, from scratch
or from a completed prefix of its journal; the old one is untouched
(DESIGN.md section 4)."""

from __future__ import annotations

import asyncio
from collections import Counter

from invoctl.sdk import Context, InvocationCancelled, Service, TerminalError, Worker
from invoctl.v1 import invocation_pb2 as pb
from tests.e2e._helpers import wait_state
from tests.e2e._operator import (
    INVALID_ARGUMENT,
    assert_history_is_a_chain,
    assert_refused,
    footprint,
    transitions,
)
from tests.support import wait_for

HEADERS = {"x-tenant": "acme", "x-trace-note": "restart"}


def chain(executed: Counter[str], mode: dict[str, str]) -> Service:
    """Three counted steps; `mode` makes the invocation fail, or sleep after step a."""
    svc = Service("Chain")

    @svc.handler()
    async def work(ctx: Context, base: str) -> list[str]:
        def step(name: str) -> str:
            executed[name] += 1
            return f"{base}.{name}#{executed[name]}"

        out = [await ctx.run("a", step, "a")]
        if mode.get("sleep"):
            await ctx.sleep(3600)
        out.append(await ctx.run("b", step, "b"))
        out.append(await ctx.run("c", step, "c"))
        if mode.get("fail"):
            raise TerminalError("refused by the chain", "CHAIN_FAILED")
        out.append(ctx.headers.get("x-tenant", ""))
        return out

    return svc


async def _old_state(client, db, inv_id: str):
    # Its row, history and journal; the new invocation is the only other change.
    return (await client.get_journal(inv_id), (await footprint(db, inv_id))[:3])


async def test_restart_succeeded_failed_and_killed_invocations(server, client, op, db):
    executed: Counter[str] = Counter()
    mode: dict[str, str] = {}
    async with Worker([chain(executed, mode)], server=server.address) as worker:
        ok = await client.send("Chain", "work", "s", headers=HEADERS)
        assert (await client.attach(ok)).outcome == pb.OUTCOME_SUCCEEDED
        mode["fail"] = "yes"
        failed = await client.send("Chain", "work", "f", headers=HEADERS)
        assert (await client.attach(failed)).outcome == pb.OUTCOME_FAILED
        mode.clear()
        mode["sleep"] = "yes"
        killed = await client.send("Chain", "work", "k", headers=HEADERS)
        await wait_state(client, killed, pb.INVOCATION_STATE_SUSPENDED)
        await op.kill(killed)
        mode.clear()

        for old_id in (ok, failed, killed):
            old = await client.get_invocation(old_id)
            before = await _old_state(client, db, old_id)
            new = await op.restart(old_id, reason="again")
            assert new.id != old_id and new.id.startswith("inv_")
            assert new.restarted_from == old_id
            assert (new.service, new.handler, new.key, new.target) == (
                old.service,
                old.handler,
                old.key,
                old.target,
            )
            assert new.input == old.input
            assert dict(new.headers) == HEADERS
            done = await client.attach(new.id)
            assert done.outcome == pb.OUTCOME_SUCCEEDED, done
            assert done.deployment_id == worker.deployment_id
            # The old one is untouched.
            assert await _old_state(client, db, old_id) == before
            steps = await transitions(client, new.id)
            assert_history_is_a_chain(steps)
            assert steps[0].event == "accepted"
    # From entry 0, every step ran again in the new invocation.
    assert executed == {"a": 6, "b": 5, "c": 5}


async def test_restart_from_entry_replays_the_prefix_and_runs_the_rest(server, client, op):
    executed: Counter[str] = Counter()
    async with Worker([chain(executed, {})], server=server.address):
        old = await client.send("Chain", "work", "x")
        assert (await client.attach(old)).output == '["x.a#1", "x.b#1", "x.c#1", ""]'
        new = await op.restart(old, from_entry=2)
        assert new.restarted_from == old
        done = await client.attach(new.id)
    # a and b come from the kept prefix; only c ran again.
    assert done.output == '["x.a#1", "x.b#1", "x.c#2", ""]'
    assert executed == {"a": 1, "b": 1, "c": 2}
    journal = await client.get_journal(new.id)
    assert [(e.name, e.value) for e in journal.entries] == [
        ("a", '"x.a#1"'),
        ("b", '"x.b#1"'),
        ("c", '"x.c#2"'),
    ]
    old_journal = await client.get_journal(old)
    assert [e.value for e in old_journal.entries] == ['"x.a#1"', '"x.b#1"', '"x.c#1"']


async def test_restart_from_entry_must_cut_at_a_completed_entry(server, client, op, db):
    mode = {"sleep": "yes"}
    async with Worker([chain(Counter(), mode)], server=server.address):
        # Killed while asleep: its journal is [a (completed), sleep (not completed)].
        inv_id = await client.send("Chain", "work", "z")
        await wait_state(client, inv_id, pb.INVOCATION_STATE_SUSPENDED)
        await op.kill(inv_id)
        journal = await client.get_journal(inv_id)
        assert [e.completed for e in journal.entries] == [True, False]

        before = await footprint(db, inv_id)
        for bad in (-1, 3, 100, 2):
            err = await op.refused("RestartInvocationAsNew", inv_id, from_entry=bad)
            assert_refused(err, INVALID_ARGUMENT, "INVALID_FROM_ENTRY")
        assert await footprint(db, inv_id) == before
        assert len((await client.list_invocations(service="Chain"))[0]) == 1

        # Cutting after the completed step is fine: it replays a, then sleeps live.
        mode.clear()
        new = await op.restart(inv_id, from_entry=1)
        done = await client.attach(new.id)
    assert done.output == '["z.a#1", "z.b#1", "z.c#1", ""]'


def trip(release: asyncio.Event, events: list[str], restarted: list[bool]) -> Service:
    """Trip/book compensates a cancel that comes while it waits; Trip/nap one that comes
    while it sleeps. A restarted book no longer sleeps after its wait."""
    svc = Service("Trip")

    def record(event: str) -> str:
        events.append(event)
        return event

    async def held() -> bool:
        record("waiting")  # inside the step: the test cancels once it is here
        return await release.wait()

    @svc.handler()
    async def book(ctx: Context) -> str:
        await ctx.run("reserve", record, "reserve")
        try:
            await ctx.run("wait", held)  # cancelled while in here
            if not restarted:
                # Raises the cancellation even if its signal has not reached the worker
                # yet: a sleep that suspends with a cancel pending is cut short.
                await ctx.sleep(3600)
            await ctx.run("charge", record, "charge")
            return "booked"
        except InvocationCancelled:
            await ctx.run("unreserve", record, "unreserve")
            raise

    @svc.handler()
    async def nap(ctx: Context) -> None:
        try:
            await ctx.sleep(3600)
        except InvocationCancelled:
            await ctx.run("undo nap", record, "undo nap")
            raise

    return svc


async def test_a_restart_keeps_no_part_of_the_old_cancellation(server, client, op, db):
    """A restart is a new invocation nobody cancelled: a prefix may not span the point
    where the old handler saw its cancellation (a cancel entry, or a sleep it cut short),
    and one that stops before it replays no cancellation."""
    release, events, restarted = asyncio.Event(), [], []

    async def waiting() -> bool:
        # Inside the step `wait`, not merely past `reserve`: a cancel that came before the
        # handler reached that await would rightly be seen one entry earlier.
        return events == ["reserve", "waiting"]

    try:
        async with Worker([trip(release, events, restarted)], server=server.address):
            # Journals [reserve, wait, cancel (or the sleep it cut short), unreserve] and
            # [sleep (cut short), undo nap].
            booked = await client.send("Trip", "book")
            await wait_for(waiting, what="the handler to be inside the step `wait`")
            await op.cancel(booked)  # while in the step `wait`
            release.set()
            napped = await client.send("Trip", "nap")
            await wait_state(client, napped, pb.INVOCATION_STATE_SUSPENDED)
            await op.cancel(napped)
            for inv_id in (booked, napped):
                assert (await client.attach(inv_id)).outcome == pb.OUTCOME_CANCELLED

            for inv_id, seen_at, too_long in ((booked, 2, (3, 4)), (napped, 0, (1, 2))):
                before = await footprint(db, inv_id)
                for bad in too_long:
                    err = await op.refused("RestartInvocationAsNew", inv_id, from_entry=bad)
                    assert_refused(
                        err, INVALID_ARGUMENT, "INVALID_FROM_ENTRY", cancelled_at_entry=str(seen_at)
                    )
                    assert f"entry {seen_at}" in err.message
                assert await footprint(db, inv_id) == before
            assert len((await client.list_invocations(service="Trip"))[0]) == 2

            # Up to the cancellation is fine: it replays reserve and wait, then books.
            restarted.append(True)
            new = await op.restart(booked, from_entry=2)
            done = await client.attach(new.id)
    finally:
        release.set()
    assert (done.outcome, done.output) == (pb.OUTCOME_SUCCEEDED, '"booked"')
    assert not done.HasField("cancelled_at")
    assert events == ["reserve", "waiting", "unreserve", "undo nap", "charge"]


async def test_restart_runs_on_the_latest_deployment_by_default(server, client, op):
    def version(name: str) -> Service:
        svc = Service("Evolving")

        @svc.handler()
        async def who(ctx: Context) -> str:
            return name

        return svc

    async with Worker([version("v1")], server=server.address, deployment="v1") as w1:
        old = await client.send("Evolving", "who")
        assert (await client.attach(old)).output == '"v1"'
        async with Worker([version("v2")], server=server.address, deployment="v2") as w2:
            latest = await client.attach((await op.restart(old)).id)
            kept = await client.attach((await op.restart(old, deployment="keep")).id)
            explicit = await client.attach((await op.restart(old, deployment=w1.deployment_id)).id)
    assert (latest.output, latest.deployment_id) == ('"v2"', w2.deployment_id)
    assert (kept.output, kept.deployment_id) == ('"v1"', w1.deployment_id)
    assert (explicit.output, explicit.deployment_id) == ('"v1"', w1.deployment_id)
