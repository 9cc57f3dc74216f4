"""End to end: real server, real Postgres, real SDK workers over loopback."""

from __future__ import annotations

from invoctl.client import InvocationFailed
from invoctl.sdk import Context, ObjectContext, Service, TerminalError, VirtualObject, Worker
from invoctl.v1 import invocation_pb2 as pb
from tests.support import wait_for


def greeter_service(calls: list[str]) -> Service:
    greeter = Service("Greeter")

    @greeter.handler()
    async def greet(ctx: Context, name: str) -> str:
        def step(n: int) -> str:
            calls.append(f"step{n}")
            return f"{name}-{n}"

        parts = [await ctx.run(f"step{n}", step, n) for n in range(3)]
        return " ".join(parts)

    @greeter.handler()
    async def fail(ctx: Context, message: str) -> None:
        raise TerminalError(message)

    return greeter


async def test_call_runs_steps_and_journals_them(server, client):
    calls: list[str] = []
    async with Worker([greeter_service(calls)], server=server.address):
        out = await client.invoke("Greeter", "greet", "bob")
    assert out == "bob-0 bob-1 bob-2"
    assert calls == ["step0", "step1", "step2"]
    [inv], _ = await client.list_invocations(service="Greeter")
    journal = await client.get_journal(inv.id)
    assert [e.name for e in journal.entries] == ["step0", "step1", "step2"]
    assert [pb.InvocationState.Name(t.to_state) for t in journal.transitions] == [
        "INVOCATION_STATE_READY",
        "INVOCATION_STATE_RUNNING",
        "INVOCATION_STATE_COMPLETED",
    ]
    assert inv.outcome == pb.OUTCOME_SUCCEEDED


async def test_terminal_error_fails_without_retry(server, client):
    async with Worker([greeter_service([])], server=server.address):
        try:
            await client.invoke("Greeter", "fail", "nope")
        except InvocationFailed as exc:
            assert exc.invocation.failure.message == "nope"
            assert exc.invocation.attempt_count == 1
            assert exc.invocation.outcome == pb.OUTCOME_FAILED
        else:
            raise AssertionError("expected InvocationFailed")


async def test_sleep_suspends_and_wakes(server, client):
    svc = Service("Sleeper")

    @svc.handler()
    async def nap(ctx: Context, seconds: float) -> str:
        await ctx.sleep(seconds)
        return "rested"

    async with Worker([svc], server=server.address):
        inv_id = await client.send("Sleeper", "nap", 0.5)
        await wait_for(
            lambda: _state_is(client, inv_id, pb.INVOCATION_STATE_SUSPENDED), what="suspended"
        )
        done = await client.attach(inv_id)
    assert done.output == '"rested"'


async def test_call_suspends_caller_until_callee_completes(server, client):
    svc = Service("Caller")

    @svc.handler()
    async def outer(ctx: Context, name: str) -> str:
        inner = await ctx.call("Greeter", "greet", name)
        return f"outer({inner})"

    async with Worker([svc, greeter_service([])], server=server.address):
        out = await client.invoke("Caller", "outer", "amy")
    assert out == "outer(amy-0 amy-1 amy-2)"


async def test_object_state_and_exclusive_key(server, client):
    cart = VirtualObject("CartObject")

    @cart.handler()
    async def add(ctx: ObjectContext, item: str) -> list[str]:
        items = await ctx.get("items") or []
        items.append(item)
        ctx.set("items", items)
        return items

    async with Worker([cart], server=server.address):
        assert await client.invoke("CartObject", "add", "apple", key="cart55") == ["apple"]
        assert await client.invoke("CartObject", "add", "pear", key="cart55") == [
            "apple",
            "pear",
        ]
        assert await client.invoke("CartObject", "add", "fig", key="cart56") == ["fig"]


async def _state_is(client, inv_id: str, state: int) -> bool:
    return (await client.get_invocation(inv_id)).state == state
