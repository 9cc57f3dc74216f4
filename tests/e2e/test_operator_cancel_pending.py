"""A cancellation its handler has yet to see (DESIGN.md section 4): an attempt that fails
first is not retried, and an attempt claimed at the moment of the cancel still gets it."""

from __future__ import annotations

import asyncio
import types

import pytest

from invoctl.client import Client
from invoctl.sdk import Context, InvocationCancelled, RetryPolicy, Service, Worker
from invoctl.v1 import invocation_pb2 as pb
from invoctl_server.runtime import sessions
from invoctl_server.store import db as store_db
from tests.conftest import server_config
from tests.e2e._helpers import history, wait_state
from tests.e2e._operator import Operator

S = pb
HOUR = RetryPolicy(initial_interval=3600, max_interval=3600)


def failing_service(release: asyncio.Event) -> Service:
    svc = Service("Failing")

    # Every attempt raises before its first await: it never reaches a point where it
    # could see a cancellation.
    @svc.handler(name="slow", retry_policy=HOUR)
    async def slow(ctx: Context) -> None:
        raise RuntimeError(f"attempt {ctx.attempt} broke")

    @svc.handler(name="once", retry_policy=RetryPolicy(max_attempts=1))
    async def once(ctx: Context) -> None:
        raise RuntimeError(f"attempt {ctx.attempt} broke")

    # Inside a step when the cancel comes, and raises right after it, before any await.
    @svc.handler(name="step", retry_policy=HOUR)
    async def step(ctx: Context) -> None:
        await ctx.run("wait", release.wait)
        raise RuntimeError(f"attempt {ctx.attempt} broke")

    return svc


@pytest.mark.parametrize(
    ("handler", "state", "attempts"),
    [
        ("slow", S.INVOCATION_STATE_BACKING_OFF, 2),
        ("once", S.INVOCATION_STATE_PAUSED, 2),
        ("step", S.INVOCATION_STATE_RUNNING, 1),
    ],
    ids=["backing-off", "paused", "running"],
)
async def test_an_attempt_that_fails_with_a_cancel_pending_completes_cancelled(
    server, client, op, handler, state, attempts
):
    release = asyncio.Event()
    try:
        async with Worker([failing_service(release)], server=server.address):
            inv_id = await client.send("Failing", handler)
            await wait_state(client, inv_id, state)
            await op.cancel(inv_id, reason="stop retrying")
            release.set()
            done = await client.attach(inv_id)
    finally:
        release.set()
    assert (done.state, done.outcome) == (S.INVOCATION_STATE_COMPLETED, S.OUTCOME_CANCELLED)
    assert (done.failure.code, done.failure.message) == ("CANCELLED", "cancelled by an operator")
    # The failure that ended its last attempt is kept.
    assert done.last_failure.message == f"RuntimeError: attempt {attempts} broke"
    assert done.attempt_count == attempts
    assert (await history(client, inv_id))[-1] == ("running", "completed", "attempt_failed")


class HeldClaims:
    """The dispatcher's view of the store, with a pause after the claim of one invocation
    commits and before the dispatcher records it in its session: the window in which a
    cancel can commit and its signal arrive first. Everything else passes straight on."""

    def __init__(self) -> None:
        self.invocation_id = ""
        self.claimed = asyncio.Event()
        self.signalled = asyncio.Event()

    async def transaction(self, pool, fn):
        result = await store_db.transaction(pool, fn)
        if self.invocation_id and any(c.row["id"] == self.invocation_id for c in result):
            self.claimed.set()
            await asyncio.wait_for(self.signalled.wait(), 15)
        return result


async def test_a_cancel_between_the_claim_and_the_session_reaches_the_attempt(
    database, monkeypatch
):
    from invoctl_server.app import App

    held = HeldClaims()
    monkeypatch.setattr(sessions, "db", types.SimpleNamespace(transaction=held.transaction))
    deliver = sessions.Dispatcher.signal

    def signal(self, payload: str) -> None:
        deliver(self, payload)
        if held.invocation_id and held.invocation_id in payload:
            held.signalled.set()

    # Before the server starts: its listener keeps the method it was given.
    monkeypatch.setattr(sessions.Dispatcher, "signal", signal)
    events: list[str] = []
    svc = Service("Late")

    @svc.handler(retry_policy=HOUR)
    async def work(ctx: Context) -> str:
        if ctx.attempt == 1:
            raise RuntimeError("first attempt fails")
        try:
            await ctx.run("step", events.append, "step")
        except InvocationCancelled:
            events.append("saw the cancel")
            raise
        return "done"

    app = await App.start(server_config(database))
    try:
        async with Client(app.address) as client, Operator(app.address) as op:
            async with Worker([svc], server=app.address):
                inv_id = await client.send("Late", "work")
                await wait_state(client, inv_id, S.INVOCATION_STATE_BACKING_OFF)
                held.invocation_id = inv_id
                await op.resume(inv_id)
                await asyncio.wait_for(held.claimed.wait(), 15)
                # Claimed and committed, not yet in the session: the cancel signals it.
                cancelled = await op.cancel(inv_id)
                assert (cancelled.state, cancelled.attempt_count) == (
                    S.INVOCATION_STATE_RUNNING,
                    2,
                )
                done = await client.attach(inv_id)
    finally:
        held.signalled.set()
        await app.stop(grace=0)
    assert (done.outcome, done.failure.code) == (S.OUTCOME_CANCELLED, "CANCELLED")
    assert events == ["saw the cancel"]
