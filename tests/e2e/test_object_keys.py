"""Exclusive handlers of one object key run one at a time; later ones wait in `pending`
and run in arrival order (DESIGN.md section 2)."""

from __future__ import annotations

from invoctl.sdk import ObjectContext, VirtualObject, Worker
from invoctl.v1 import invocation_pb2 as pb
from tests.e2e._helpers import Gates, history


def cart_object(gates: Gates, started: list[tuple[str, str]]) -> VirtualObject:
    cart = VirtualObject("CartObject")

    async def step(key: str, item: str) -> str:
        started.append((key, item))
        return await gates.pass_through(item)

    @cart.handler()
    async def add(ctx: ObjectContext, item: str) -> list[str]:
        items = await ctx.get("items") or []
        await ctx.run("step", step, ctx.key, item)
        items.append(item)
        ctx.set("items", items)
        return items

    @cart.handler(shared=True)
    async def peek(ctx: ObjectContext) -> list[str]:
        return await ctx.get("items") or []

    return cart


async def test_exclusive_handlers_queue_behind_the_key_holder(server, client, db):
    gates = Gates()
    gates.hold("first")
    started: list[tuple[str, str]] = []
    async with Worker([cart_object(gates, started)], server=server.address):
        first = await client.send("CartObject", "add", "first", key="k")
        await gates.wait_entered("first")
        assert (await client.get_invocation(first)).state == pb.INVOCATION_STATE_RUNNING

        queued = [await client.send("CartObject", "add", item, key="k") for item in "abc"]
        for inv_id in queued:
            assert (await client.get_invocation(inv_id)).state == pb.INVOCATION_STATE_PENDING
        holder = await db.fetchval(
            "SELECT holder_id FROM object_locks WHERE service = 'CartObject' AND object_key = 'k'"
        )
        assert holder == first

        # Another key and a shared handler of the same key do not wait for the holder.
        assert await client.invoke("CartObject", "add", "other", key="k2") == ["other"]
        assert await client.invoke("CartObject", "peek", key="k") == []
        for inv_id in queued:
            assert (await client.get_invocation(inv_id)).state == pb.INVOCATION_STATE_PENDING
        assert [item for key, item in started if key == "k"] == ["first"]

        gates.open("first")
        results = [(await client.attach(inv_id)).output for inv_id in queued]

    assert results[-1] == '["first", "a", "b", "c"]'
    assert [item for key, item in started if key == "k"] == ["first", "a", "b", "c"]
    assert await history(client, queued[0]) == [
        ("", "pending", "accepted"),
        ("pending", "ready", "key_acquired"),
        ("ready", "running", "claimed"),
        ("running", "completed", "completed"),
    ]
    # The last one released the key: nobody holds or waits for it.
    assert await db.fetchval("SELECT count(*) FROM object_locks") == 0
