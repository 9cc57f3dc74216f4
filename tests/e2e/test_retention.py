"""Completed invocations (cancelled and killed ones too) are kept for their service's
retention, then deleted by the cleaner of whichever server gets to them first."""

from __future__ import annotations

import grpc
import pytest

from invoctl.client import Client, InvoctlError
from invoctl.sdk import Context, Service, Worker
from invoctl_server.app import App
from tests.conftest import server_config
from tests.support import wait_for


async def test_cleaner_deletes_after_retention_and_keeps_the_rest(database, db, spans):
    short = Service("Short", retention=2.0)
    kept = Service("Kept")  # the default retention: 24 h

    @short.handler()
    async def work(ctx: Context) -> str:
        return await ctx.run("step", lambda: "done")

    @kept.handler()
    async def keep(ctx: Context) -> str:
        return "kept"

    # Two servers on one database: both run a cleaner; each invocation is deleted once.
    first = await App.start(server_config(database))
    second = await App.start(server_config(database, name="second"))
    try:
        async with Worker([short, kept], server=first.address), Client(first.address) as c:
            short_ids = [await c.send("Short", "work") for _ in range(20)]
            kept_id = await c.send("Kept", "keep")
            for i in [*short_ids, kept_id]:
                await c.attach(i)

            async def gone():
                return await db.fetchval(
                    "SELECT count(*) FROM invocations WHERE id = ANY($1::text[])", short_ids
                ) == 0  # fmt: skip

            await wait_for(gone, what="the cleaner to delete expired invocations")
            with pytest.raises(InvoctlError) as missing:
                await c.get_invocation(short_ids[0])
            assert missing.value.code == grpc.StatusCode.NOT_FOUND
            assert (await c.get_invocation(kept_id)).output == '"kept"'
            journal_rows = await db.fetchval(
                "SELECT count(*) FROM journal_entries WHERE invocation_id = ANY($1::text[])",
                short_ids,
            )
            assert journal_rows == 0
        purged = [
            s for s in spans.get_finished_spans() if s.attributes.get("invoctl.event") == "purged"
        ]
        assert sorted(s.attributes["restate.invocation.id"] for s in purged) == sorted(short_ids)
    finally:
        await first.stop(grace=0)
        await second.stop(grace=0)
