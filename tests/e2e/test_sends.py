"""One-way and delayed sends, from a client and from a handler (DESIGN.md sections 3, 7)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from invoctl.client import invoke_request
from invoctl.sdk import Context, Service, Worker
from invoctl.v1 import invocation_pb2 as pb
from tests.e2e._helpers import Gates, history

DELAY = 0.4


def services(ran_at: dict[str, float], gates: Gates) -> list[Service]:
    target = Service("Target")

    @target.handler()
    async def record(ctx: Context, label: str) -> str:
        ran_at.setdefault(label, time.time())
        return f"got {label}"

    @target.handler()
    async def block(ctx: Context, label: str) -> str:
        return await ctx.run("gate", gates.pass_through, label)

    sender = Service("Sender")

    @sender.handler()
    async def later(ctx: Context, label: str) -> str:
        ctx.send("Target", "record", label, delay=DELAY)
        return "sent"

    @sender.handler()
    async def now(ctx: Context, label: str) -> str:
        ctx.send("Target", "block", label)
        return "sent"

    return [target, sender]


def _utc(ts) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


async def test_client_send_with_delay_is_scheduled_then_runs(server, client):
    ran_at: dict[str, float] = {}
    async with Worker(services(ran_at, Gates()), server=server.address):
        before = datetime.now(UTC)
        request = invoke_request("Target", "record", "client", send=True, delay=DELAY)
        response = await client.invoke_raw(request)
        after = datetime.now(UTC)
        inv = response.invocation
        assert inv.state == pb.INVOCATION_STATE_SCHEDULED
        run_at = _utc(inv.run_at)
        assert before + timedelta(seconds=DELAY) <= run_at <= after + timedelta(seconds=DELAY)
        assert inv.attempt_count == 0

        done = await client.attach(response.invocation_id)

    assert done.output == '"got client"'
    assert not done.HasField("run_at")  # only while scheduled
    assert ran_at["client"] >= run_at.timestamp()
    assert await history(client, done.id) == [
        ("", "scheduled", "accepted"),
        ("scheduled", "ready", "due"),
        ("ready", "running", "claimed"),
        ("running", "completed", "completed"),
    ]


async def test_handler_send_with_delay_is_scheduled_then_runs(server, client):
    ran_at: dict[str, float] = {}
    async with Worker(services(ran_at, Gates()), server=server.address):
        assert await client.invoke("Sender", "later", "handler") == "sent"
        [sender], _ = await client.list_invocations(service="Sender")
        journal = await client.get_journal(sender.id)
        [entry] = journal.entries
        assert entry.kind == pb.JOURNAL_ENTRY_KIND_SEND
        assert entry.delay_ms == int(DELAY * 1000)
        assert entry.completed
        callee_id = entry.callee_invocation_id
        assert callee_id.startswith("inv_")
        # The sender is done; the callee may still be waiting for its time.
        assert sender.state == pb.INVOCATION_STATE_COMPLETED
        assert _utc(entry.wake_at) == _utc(entry.created_at) + timedelta(seconds=DELAY)

        done = await client.attach(callee_id)

    assert done.output == '"got handler"'
    assert done.caller_id == ""  # a send is detached from its sender
    assert ran_at["handler"] >= _utc(entry.wake_at).timestamp()
    assert await history(client, callee_id) == [
        ("", "scheduled", "accepted"),
        ("scheduled", "ready", "due"),
        ("ready", "running", "claimed"),
        ("running", "completed", "completed"),
    ]


async def test_one_way_send_does_not_wait_for_the_callee(server, client):
    gates = Gates()
    gates.hold("detached")
    async with Worker(services({}, gates), server=server.address):
        assert await client.invoke("Sender", "now", "detached") == "sent"
        # The sender completed while the callee is still blocked in its step.
        await gates.wait_entered("detached")
        [sender], _ = await client.list_invocations(service="Sender")
        assert sender.state == pb.INVOCATION_STATE_COMPLETED
        [entry] = (await client.get_journal(sender.id)).entries
        callee = await client.get_invocation(entry.callee_invocation_id)
        assert callee.state == pb.INVOCATION_STATE_RUNNING
        assert callee.caller_id == ""

        gates.open("detached")
        done = await client.attach(callee.id)

    assert done.output == '"detached"'
    assert (await client.get_invocation(sender.id)).state == pb.INVOCATION_STATE_COMPLETED
