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
        listed = [i async for i in client.iter_invocations()]
        assert len(listed) == 2 and {len(i.output) for i in listed} == {5 * MiB + 2}

        # Past the limit, still the clear error, from the server's own check.
        with pytest.raises(InvoctlError) as refused:
            await client.invoke_raw(invoke_request("Echo", "back", "x" * (9 * MiB), send=True))
        assert refused.value.reason == "PAYLOAD_TOO_LARGE"


async def test_a_page_of_large_invocations_ends_early_and_pages_on(roomy):
    # 100 invocations of 8 MiB would make one 800 MiB message: a page stops after 4 MiB
    # of payloads (at least one invocation), and its token goes on to the rest.
    registering = Worker([echo_service()], server=roomy.address)
    await registering.register()
    await registering.stop()  # nobody runs them: they stay ready
    async with Client(roomy.address) as client:
        sent = [await client.send("Echo", "back", "y" * (3 * MiB)) for _ in range(3)]
        small = [await client.send("Echo", "back", "z") for _ in range(3)]
        pages, token = [], None
        while True:
            page, token = await client.list_invocations(page_token=token)
            pages.append(page)
            if token is None:
                break
    listed = [i.id for page in pages for i in page]
    assert sorted(listed) == sorted(sent + small) and listed == sorted(listed, reverse=True)
    sizes = [sum(len(i.input) for i in page) for page in pages]
    # Three 3 MiB inputs cannot share a 4 MiB page: at least three pages, each within
    # the budget unless it holds a single invocation.
    assert len(pages) >= 3, sizes
    assert all(
        size <= 4 * MiB or len(page) == 1 for size, page in zip(sizes, pages, strict=True)
    ), sizes
