"""Deployments: registration, listing, and pinning an invocation to the deployment of its
first attempt while new invocations go to the latest (DESIGN.md section 2)."""

from __future__ import annotations

from invoctl.sdk import Context, Service, Worker
from invoctl.v1 import invocation_pb2 as pb
from tests.e2e._helpers import wait_state

NAP = 1.0  # long enough to register a second deployment while the first invocation sleeps


def versioned(version: str, seen: list[tuple[str, str, int]]) -> Service:
    """Version `version` of the service: the handler reports which worker ran it."""
    svc = Service("Pinned")

    @svc.handler()
    async def who(ctx: Context, nap: float) -> str:
        seen.append((ctx.invocation_id, version, ctx.attempt))
        if nap:
            await ctx.sleep(nap)
        return version

    return svc


async def test_invocation_stays_on_its_first_deployment(server, client):
    seen: list[tuple[str, str, int]] = []
    async with Worker(
        [versioned("v1", seen)], server=server.address, deployment="v1", name="w1"
    ) as w1:
        dp1 = w1.deployment_id
        assert dp1 is not None and dp1.startswith("dp_")
        pinned = await client.send("Pinned", "who", NAP)
        suspended = await wait_state(client, pinned, pb.INVOCATION_STATE_SUSPENDED)
        assert suspended.deployment_id == dp1

        async with Worker(
            [versioned("v2", seen)], server=server.address, deployment="v2", name="w2"
        ) as w2:
            dp2 = w2.deployment_id
            assert dp2 is not None and dp2.startswith("dp_") and dp2 != dp1
            # Registered while the first invocation still sleeps, else this proves nothing.
            assert (await client.get_invocation(pinned)).state == pb.INVOCATION_STATE_SUSPENDED

            assert await client.invoke("Pinned", "who", 0) == "v2"
            done = await client.attach(pinned)

    assert done.output == '"v1"'
    assert done.deployment_id == dp1
    assert [(version, attempt) for inv, version, attempt in seen if inv == pinned] == [
        ("v1", 1),
        ("v1", 2),
    ]
    journal = await client.get_journal(pinned)
    claims = [t.actor for t in journal.transitions if t.event == "claimed"]
    assert claims == ["worker:w1", "worker:w1"]

    [newer], _ = await client.list_invocations(service="Pinned", deployment_id=dp2)
    assert newer.deployment_id == dp2
    assert newer.output == '"v2"'


async def test_list_deployments_newest_first_and_by_service(server, client):
    other = Service("Other")

    @other.handler()
    async def noop(ctx: Context) -> None:
        return None

    first = Worker([versioned("v1", [])], server=server.address, deployment="v1")
    second = Worker([versioned("v2", []), other], server=server.address, deployment="v2")
    dp1 = await first.register()
    dp2 = await second.register()
    await first.stop()
    await second.stop()

    assert [d.id for d in await client.list_deployments()] == [dp2, dp1]
    assert [d.id for d in await client.list_deployments("Pinned")] == [dp2, dp1]
    assert [d.id for d in await client.list_deployments("Other")] == [dp2]
    assert await client.list_deployments("Nobody") == []
    [latest, _] = await client.list_deployments()
    services = {s.name: [h.name for h in s.handlers] for s in latest.services}
    assert services == {"Pinned": ["who"], "Other": ["noop"]}
    assert latest.HasField("created_at")
