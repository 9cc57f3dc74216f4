"""An attempt the worker gives up after an error ack is ended on the server too."""

from __future__ import annotations

from invoctl.client import Client
from invoctl.sdk import Context, RetryPolicy, Service, Worker
from invoctl.v1 import invocation_pb2 as pb
from invoctl_server.app import App
from tests.conftest import server_config
from tests.support import wait_for


async def test_refused_step_result_fails_the_attempt_instead_of_leaving_it_running(database):
    app = await App.start(server_config(database, max_payload_bytes=1000))
    svc = Service("Big", retry_policy=RetryPolicy(initial_interval=0.05, max_attempts=2))

    @svc.handler()
    async def make(ctx: Context) -> str:
        return await ctx.run("big", lambda: "x" * 2000)

    try:
        async with Worker([svc], server=app.address), Client(app.address) as client:
            inv_id = await client.send("Big", "make")

            async def paused():
                inv = await client.get_invocation(inv_id)
                return inv if inv.state == pb.INVOCATION_STATE_PAUSED else None

            inv = await wait_for(paused, what="paused after max attempts")
            assert inv.attempt_count == 2
            assert inv.last_failure.code == "PAYLOAD_TOO_LARGE"
            journal = await client.get_journal(inv_id)
            assert list(journal.entries) == []  # the refused result was never written
            assert [t.event for t in journal.transitions] == [
                "accepted",
                "claimed",
                "attempt_failed",
                "retry_due",
                "claimed",
                "retries_exhausted",
            ]
    finally:
        await app.stop(grace=0)
