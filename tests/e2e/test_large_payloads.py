"""`--max-payload-bytes` above gRPC's default 4 MiB works end to end: the server reads
what the limit allows, and every channel to it (client, SDK worker stream) receives what
it sends, several payloads to a message (issue 12, point 5)."""

from __future__ import annotations

import pytest

from invoctl.client import Client, InvoctlError, invoke_request
from invoctl.sdk import Context, Service, Worker
from invoctl.v1 import invocation_pb2 as pb
from tests.conftest import server_config

MiB = 1024 * 1024
LIMIT = 8 * MiB


@pytest.fixture
async def roomy(database):
    from invoctl_server.app import App

    app = await App.start(server_config(database, max_payload_bytes=LIMIT))
    yield app
    await app.stop(grace=0)


def echo_service() -> Service:
    echo = Service("Echo")

    @echo.handler()
    async def back(ctx: Context, text: str) -> str:
        # Journaled too: the retry of an attempt would replay it from AttemptStart.
        return await ctx.run("copy", lambda: text)

    return echo


async def test_five_mib_goes_through_every_channel(roomy):
    text = "x" * (5 * MiB)
    async with Client(roomy.address) as client, Worker([echo_service()], server=roomy.address):
        assert await client.invoke("Echo", "back", text) == text  # a call's response
        sent = await client.send("Echo", "back", text)  # a send, its attempt, its output
        done = await client.attach(sent)
        assert (done.state, done.outcome) == (pb.INVOCATION_STATE_COMPLETED, pb.OUTCOME_SUCCEEDED)
        assert len(done.input) == len(done.output) == 5 * MiB + 2
        journal = await client.get_journal(sent)
        assert [len(e.value) for e in journal.entries if e.name == "copy"] == [5 * MiB + 2]
        page, _ = await client.list_invocations()
        assert len(page) == 2 and {len(i.output) for i in page} == {5 * MiB + 2}

        # Past the limit, still the clear error, from the server's own check.
        with pytest.raises(InvoctlError) as refused:
            await client.invoke_raw(invoke_request("Echo", "back", "x" * (9 * MiB), send=True))
        assert refused.value.reason == "PAYLOAD_TOO_LARGE"
