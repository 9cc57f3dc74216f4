"""ResumeInvocation: paused, suspended and backing-off invocations run again, replaying
their journal, optionally on another deployment (DESIGN.md sections 2 and 4)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from invoctl.sdk import Context, RetryPolicy, Service, Worker
from invoctl.v1 import invocation_pb2 as pb
from tests.e2e._helpers import wait_state
from tests.e2e._operator import (
    FAILED_PRECONDITION,
    INVALID_ARGUMENT,
    NOT_FOUND,
    OPERATOR,
    assert_history_is_a_chain,
    assert_refused,
    footprint,
    transitions,
)
from tests.support import wait_for

PAUSED = pb.INVOCATION_STATE_PAUSED
BACKING_OFF = pb.INVOCATION_STATE_BACKING_OFF
TWICE = RetryPolicy(initial_interval=0.05, max_interval=0.05, max_attempts=2)
ONCE = RetryPolicy(initial_interval=0.05, max_interval=0.05, max_attempts=1)
DAILY = RetryPolicy(initial_interval=3600, max_interval=3600)


async def test_resume_paused_replays_the_journal(server, client, op):
    executed: Counter[str] = Counter()
    broken = {"yes": True}
    svc = Service("Fragile", retry_policy=ONCE)

    @svc.handler()
    async def work(ctx: Context) -> str:
        def step() -> str:
            executed["step"] += 1
            return f"step@{ctx.attempt}"

        value = await ctx.run("step", step)
        if broken["yes"]:
            raise RuntimeError("broken")
        return f"{value}, finished@{ctx.attempt}"

    async with Worker([svc], server=server.address):
        inv_id = await client.send("Fragile", "work")
        await wait_state(client, inv_id, PAUSED)
        broken["yes"] = False
        resumed = await op.resume(inv_id, reason="fixed the config")
        assert resumed.state in (pb.INVOCATION_STATE_READY, pb.INVOCATION_STATE_RUNNING)
        done = await client.attach(inv_id)
    assert (done.outcome, done.output) == (pb.OUTCOME_SUCCEEDED, '"step@1, finished@2"')
    assert executed["step"] == 1  # replayed, not run again
    steps = await transitions(client, inv_id)
    assert_history_is_a_chain(steps)
    [resume] = [t for t in steps if t.actor == OPERATOR]
    assert (resume.from_state, resume.to_state) == (PAUSED, pb.INVOCATION_STATE_READY)
    assert [t.event for t in steps][-2:] == ["claimed", "completed"]


async def test_resume_suspended_runs_again_and_suspends_again(server, client, op):
    attempts: list[int] = []
    svc = Service("Napper")

    @svc.handler()
    async def nap(ctx: Context) -> None:
        attempts.append(ctx.attempt)
        await ctx.sleep(3600)

    async with Worker([svc], server=server.address):
        inv_id = await client.send("Napper", "nap")
        await wait_state(client, inv_id, pb.INVOCATION_STATE_SUSPENDED)
        await op.resume(inv_id)

        async def suspended_again() -> pb.Invocation | None:
            inv = await client.get_invocation(inv_id)
            done = inv.state == pb.INVOCATION_STATE_SUSPENDED and inv.attempt_count == 2
            return inv if done else None

        await wait_for(suspended_again, what="the resumed nap to suspend again")
    assert attempts == [1, 2]
    journal = await client.get_journal(inv_id)
    [sleep] = journal.entries
    assert sleep.kind == pb.JOURNAL_ENTRY_KIND_SLEEP and not sleep.completed
    assert_history_is_a_chain(list(journal.transitions))
    assert [t.event for t in journal.transitions][-2:] == ["claimed", "suspended"]


async def test_resume_backing_off_retries_now(server, client, op):
    svc = Service("Patient", retry_policy=DAILY)

    @svc.handler()
    async def work(ctx: Context) -> str:
        if ctx.attempt == 1:
            raise RuntimeError("first attempt fails")
        return f"attempt {ctx.attempt}"

    async with Worker([svc], server=server.address):
        inv_id = await client.send("Patient", "work")
        backing_off = await wait_state(client, inv_id, BACKING_OFF)
        retry_at = backing_off.next_retry_at.ToDatetime(tzinfo=UTC)
        await op.resume(inv_id)
        done = await client.attach(inv_id)
    assert (done.outcome, done.output) == (pb.OUTCOME_SUCCEEDED, '"attempt 2"')
    assert done.completed_at.ToDatetime(tzinfo=UTC) < retry_at
    assert (retry_at - datetime.now(UTC)).total_seconds() > 3000
    steps = await transitions(client, inv_id)
    assert_history_is_a_chain(steps)
    [resume] = [t for t in steps if t.actor == OPERATOR]
    assert (resume.from_state, resume.to_state) == (BACKING_OFF, pb.INVOCATION_STATE_READY)


def versioned(version: str, ran: list[tuple[str, str, int]], executed: Counter[str]) -> Service:
    """The service "Versioned" as deployment `version` has it.

    v1 has a bug: `work` fails after its first step. v2 fixes it. v3 renamed the first
    step: its code no longer matches a journal that v1 wrote. `slow` fails on v1, once
    a day."""
    svc = Service("Versioned", retry_policy=TWICE)

    @svc.handler()
    async def work(ctx: Context) -> str:
        ran.append((ctx.invocation_id, version, ctx.attempt))

        def prepare() -> str:
            executed[f"prepare@{version}"] += 1
            return f"prepared by {version}"

        prepared = await ctx.run("prepare" if version != "v3" else "prepare-renamed", prepare)
        if version == "v1":
            raise RuntimeError("bug in v1")
        return f"{prepared}, finished by {version}"

    @svc.handler(retry_policy=DAILY)
    async def slow(ctx: Context) -> str:
        if version == "v1":
            raise RuntimeError("v1 fails")
        return version

    return svc


def unrelated() -> Service:
    svc = Service("Unrelated")

    @svc.handler()
    async def noop(ctx: Context) -> None:
        return None

    return svc


async def _paused_on_v1(client, inv_id: str, attempts: int) -> pb.Invocation:
    async def probe() -> pb.Invocation | None:
        inv = await client.get_invocation(inv_id)
        return inv if inv.state == PAUSED and inv.attempt_count == attempts else None

    return await wait_for(probe, what=f"{inv_id} paused after {attempts} attempts")


async def test_the_story_fix_on_a_new_deployment_and_resume_on_latest(server, client, op):
    ran: list[tuple[str, str, int]] = []
    executed: Counter[str] = Counter()
    async with Worker(
        [versioned("v1", ran, executed)], server=server.address, deployment="v1", name="w1"
    ) as w1:
        inv_id = await client.send("Versioned", "work")
        paused = await _paused_on_v1(client, inv_id, 2)
        assert paused.deployment_id == w1.deployment_id
        assert paused.last_failure.message == "RuntimeError: bug in v1"

        async with Worker(
            [versioned("v2", ran, executed)], server=server.address, deployment="v2", name="w2"
        ) as w2:
            resumed = await op.resume(inv_id, deployment="latest", reason="v2 fixes it")
            assert resumed.deployment_id == w2.deployment_id
            done = await client.attach(inv_id)

    assert done.outcome == pb.OUTCOME_SUCCEEDED
    assert done.output == '"prepared by v1, finished by v2"'
    assert done.deployment_id == w2.deployment_id
    assert [(v, a) for i, v, a in ran if i == inv_id] == [("v1", 1), ("v1", 2), ("v2", 3)]
    assert executed == {"prepare@v1": 1}  # v2 replayed the step v1 journaled
    journal = await client.get_journal(inv_id)
    assert [t.actor for t in journal.transitions if t.event == "claimed"] == [
        "worker:w1",
        "worker:w1",
        "worker:w2",
    ]
    assert_history_is_a_chain(list(journal.transitions))


async def test_resume_on_diverging_code_fails_with_non_determinism(server, client, op):
    ran: list[tuple[str, str, int]] = []
    executed: Counter[str] = Counter()
    async with Worker(
        [versioned("v1", ran, executed)], server=server.address, deployment="v1", name="w1"
    ):
        inv_id = await client.send("Versioned", "work")
        await _paused_on_v1(client, inv_id, 2)
        async with Worker(
            [versioned("v3", ran, executed)], server=server.address, deployment="v3", name="w3"
        ) as w3:
            resumed = await op.resume(inv_id, deployment=w3.deployment_id)
            assert resumed.deployment_id == w3.deployment_id

            async def failed_on_v3() -> pb.Invocation | None:
                # Attempt 3 counts from its claim, while last_failure still holds attempt
                # 2's: wait for the attempt to have ended.
                inv = await client.get_invocation(inv_id)
                ended = inv.state in (PAUSED, BACKING_OFF)
                return inv if inv.attempt_count == 3 and ended else None

            inv = await wait_for(failed_on_v3, what="the attempt on v3 to fail")
    assert inv.last_failure.code == "NON_DETERMINISM"
    assert inv.state in (PAUSED, BACKING_OFF)
    assert executed == {"prepare@v1": 1}  # the renamed step never ran
    assert [(v, a) for i, v, a in ran if i == inv_id][-1] == ("v3", 3)


async def test_resume_deployment_choices(server, client, op, db):
    ran: list[tuple[str, str, int]] = []
    executed: Counter[str] = Counter()
    other = Worker([unrelated()], server=server.address)
    dp_other = await other.register()
    await other.stop()
    async with Worker(
        [versioned("v1", ran, executed)], server=server.address, deployment="v1", name="w1"
    ) as w1:
        dp1 = w1.deployment_id
        paused_id = await client.send("Versioned", "work")
        await _paused_on_v1(client, paused_id, 2)
        slow_id = await client.send("Versioned", "slow")
        await wait_state(client, slow_id, BACKING_OFF)
        async with Worker(
            [versioned("v2", ran, executed)], server=server.address, deployment="v2", name="w2"
        ) as w2:
            dp2 = w2.deployment_id

            # Refused deployments change nothing.
            before = await footprint(db, paused_id)
            err = await op.refused("ResumeInvocation", paused_id, deployment="dp_" + "A" * 22)
            assert_refused(err, NOT_FOUND, "DEPLOYMENT_NOT_FOUND")
            for bad in ("bogus", "dp_!", paused_id):
                err = await op.refused("ResumeInvocation", paused_id, deployment=bad)
                assert_refused(err, INVALID_ARGUMENT, "INVALID_DEPLOYMENT")
            err = await op.refused("ResumeInvocation", paused_id, deployment=dp_other)
            assert_refused(err, FAILED_PRECONDITION, "DEPLOYMENT_DOES_NOT_SERVE")
            assert await footprint(db, paused_id) == before

            # A backing-off invocation retries now, and may move to another deployment too
            # (its own may have no worker left).
            resumed = await op.resume(slow_id, deployment=dp2)
            assert (resumed.state, resumed.deployment_id) == (pb.INVOCATION_STATE_READY, dp2)

            # "" and "keep" keep the pinned deployment: still v1, which fails again.
            for n, keep in enumerate(("", "keep"), start=3):
                resumed = await op.resume(paused_id, deployment=keep)
                assert resumed.deployment_id == dp1
                inv = await _paused_on_v1(client, paused_id, n)
                assert inv.deployment_id == dp1

            # An explicit ID re-pins it.
            resumed = await op.resume(paused_id, deployment=dp2)
            assert resumed.deployment_id == dp2
            done = await client.attach(paused_id)
    assert (done.outcome, done.deployment_id) == (pb.OUTCOME_SUCCEEDED, dp2)
    assert [(v, a) for i, v, a in ran if i == paused_id] == [
        ("v1", 1),
        ("v1", 2),
        ("v1", 3),
        ("v1", 4),
        ("v2", 5),
    ]
