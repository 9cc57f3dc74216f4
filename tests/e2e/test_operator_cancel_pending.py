"""A cancellation its handler has yet to see (DESIGN.md section 4): an attempt claimed at
the moment of the cancel still gets it."""

from __future__ import annotations

import asyncio
import types

from invoctl.client import Client
from invoctl.sdk import Context, InvocationCancelled, RetryPolicy, Service, Worker
from invoctl.v1 import invocation_pb2 as pb
from invoctl_server.runtime import sessions
from invoctl_server.store import db as store_db
from tests.conftest import server_config
from tests.e2e._helpers import wait_state
from tests.e2e._operator import Operator

S = pb
HOUR = RetryPolicy(initial_interval=3600, max_interval=3600)


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
