"""A deployment is a version of the code, not a process (DESIGN.md section 2, issue 11):
registering an identity again is the same deployment, a changed definition under one
identity is refused, every server knows which deployments have a live worker, and an
operator can move work stranded on a deployment whose workers are gone."""

from __future__ import annotations

import asyncio
from collections import Counter

import grpc
import pytest

from invoctl.client import Client, InvoctlError
from invoctl.client._errors import error_from_rpc_error
from invoctl.sdk import Context, RetryPolicy, Service, Worker
from invoctl.v1 import invocation_pb2 as pb
from invoctl.v1 import workers_pb2 as wpb
from invoctl_server.app import App
from tests.conftest import fresh_database, server_config
from tests.e2e._helpers import FAST_RETRY, Gates, greeter, wait_state
from tests.e2e._operator import assert_wrong_state
from tests.e2e.test_cli import invoctl
from tests.support import wait_for

READY = pb.INVOCATION_STATE_READY


def _reason(err: grpc.aio.AioRpcError) -> str:
    return error_from_rpc_error(err).reason


async def test_an_identity_registered_again_is_the_same_deployment(server, client):
    first = Worker([greeter()], server=server.address, deployment="greeter@2026-11-30")
    again = Worker([greeter()], server=server.address, deployment="greeter@2026-11-30")
    dp = await first.register()
    assert await again.register() == dp
    # Replicas starting at once race to register it: one row wins, all get it.
    racers = [Worker([greeter()], server=server.address, deployment="greeter@2") for _ in range(8)]
    ids = await asyncio.gather(*(w.register() for w in racers))
    for w in (first, again, *racers):
        await w.stop()

    assert len(set(ids)) == 1 and ids[0] != dp
    listed = await client.list_deployments()
    assert [(d.id, d.identity) for d in listed] == [
        (ids[0], "greeter@2"),
        (dp, "greeter@2026-11-30"),
    ]


async def test_the_default_identity_is_derived_from_the_code(server, client, monkeypatch):
    one = Worker([greeter()], server=server.address)
    same = Worker([greeter()], server=server.address)
    other = Service("Greeter")

    @other.handler()
    async def greet(ctx: Context, name: str) -> str:
        return f"Hi, {name}"

    @other.handler()
    async def farewell(ctx: Context, name: str) -> str:
        return f"Bye, {name}"

    changed = Worker([other], server=server.address)
    slower = Worker([greeter()], server=server.address, retry_policy=RetryPolicy(max_attempts=3))
    monkeypatch.setenv("INVOCTL_DEPLOYMENT", "from-the-environment")
    named = Worker([greeter()], server=server.address)

    assert one.deployment.startswith("code@") and one.deployment == same.deployment
    assert changed.deployment.startswith("code@") and changed.deployment != one.deployment
    assert slower.deployment not in (one.deployment, changed.deployment)
    assert named.deployment == "from-the-environment"
    dps = [await w.register() for w in (one, same, changed, slower, named)]
    for w in (one, same, changed, slower, named):
        await w.stop()
    assert dps[0] == dps[1]
    assert len(set(dps)) == 4


async def test_an_identity_with_another_definition_is_refused(server, client, db):
    await Worker([greeter()], server=server.address, deployment="checkout@1").register()
    before = await db.fetchval("SELECT count(*) FROM deployment_handlers")

    grown = greeter()

    @grown.handler()
    async def shout(ctx: Context, name: str) -> str:
        return name.upper()

    for services, retry, change in (
        ([grown], None, "handler Greeter/shout added"),
        ([greeter()], RetryPolicy(max_attempts=2), "handler Greeter/greet changed"),
    ):
        worker = Worker(
            services, server=server.address, deployment="checkout@1", retry_policy=retry
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await worker.register()
        await worker.stop()
        assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS
        assert _reason(refused.value) == "DEPLOYMENT_MISMATCH"
        assert change in refused.value.details()
        assert "new deployment name" in refused.value.details()

    [only] = await client.list_deployments()
    assert only.identity == "checkout@1"
    assert [h.name for h in only.services[0].handlers] == ["greet"]
    assert await db.fetchval("SELECT count(*) FROM deployment_handlers") == before


@pytest.mark.parametrize("identity", ["has space", "x" * 201, "semi;colon", "new\nline"])
async def test_a_malformed_identity_is_refused_and_registers_nothing(workers, db, identity):
    request = Worker([greeter()], deployment=identity).deployment_request()
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await workers.RegisterDeployment(request)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _reason(refused.value) == "INVALID_DEPLOYMENT"
    assert await db.fetchval("SELECT count(*) FROM deployments") == 0


def _stranded(version: str, gates: Gates, ran: Counter[str]) -> Service:
    """Stranded/work: step one, then step two, which version `a` holds at a gate."""
    svc = Service("Stranded", retry_policy=FAST_RETRY)

    @svc.handler()
    async def work(ctx: Context, n: int) -> str:
        async def step(name: str) -> str:
            ran[f"{name}@{version}"] += 1
            if version == "a":
                await gates.pass_through(f"{name}-{n}")
            return f"{name}@{version}"

        return "+".join([await ctx.run("one", step, "one"), await ctx.run("two", step, "two")])

    return svc


async def _strand(server, client, n: int, ran: Counter[str]) -> tuple[str, list[str]]:
    """`n` invocations that started on deployment `a`, whose only worker then went away in
    their second step: they are ready again, pinned to `a`, with nobody to run them."""
    gates = Gates()
    gates.hold(*(f"two-{i}" for i in range(n)))
    async with Worker([_stranded("a", gates, ran)], server=server.address, deployment="a") as a:
        ids = [await client.send("Stranded", "work", i) for i in range(n)]
        for i in range(n):
            await gates.wait_entered(f"two-{i}")
        await a.stop(grace=0)
    assert a.deployment_id is not None
    for inv_id in ids:
        inv = await wait_state(client, inv_id, READY)
        assert (inv.deployment_id, inv.attempt_count) == (a.deployment_id, 1)
    return a.deployment_id, ids


async def test_workers_and_pinned_invocations_are_listed(server, client):
    ran: Counter[str] = Counter()
    gates = Gates()
    gates.hold("two-0")
    async with Worker(
        [_stranded("a", gates, ran)], server=server.address, deployment="a", name="wa"
    ):
        inv_id = await client.send("Stranded", "work", 0)
        await gates.wait_entered("two-0")
        [dep] = await client.list_deployments()
        assert [(s.worker_name, s.server) for s in dep.sessions] == [("wa", "test-server")]
        assert dep.sessions[0].id.startswith("sess_")
        assert dep.pinned_invocations == 1
        running = await client.get_invocation(inv_id)
        assert not running.HasField("no_worker")  # its worker is connected
        gates.open("two-0")
        await client.attach(inv_id)

    [dep] = await client.list_deployments()
    assert list(dep.sessions) == [] and dep.HasField("last_seen_at")
    assert dep.pinned_invocations == 0  # drained


async def test_an_invocation_without_a_worker_says_so(server, client):
    ran: Counter[str] = Counter()
    dp_a, [inv_id] = await _strand(server, client, 1, ran)
    inv = await client.get_invocation(inv_id)
    assert inv.no_worker.deployment_id == dp_a
    assert inv.no_worker.HasField("last_seen_at")
    journal = await client.get_journal(inv_id)
    assert journal.invocation.no_worker.deployment_id == dp_a
    [dep] = await client.list_deployments()
    assert (list(dep.sessions), dep.pinned_invocations) == ([], 1)

    code, out, _ = await invoctl(server, "invocations", "get", inv_id)
    assert code == 0
    assert f"no worker of {dp_a} connected since" in " ".join(out.split())
    code, out, _ = await invoctl(server, "deployments", "ls")
    assert code == 0 and "none since" in out

    # A completed invocation waits for nothing.
    async with Worker([greeter()], server=server.address) as w:
        done_id = await client.send("Greeter", "greet", "Ada")
        await client.attach(done_id)
    assert not (await client.get_invocation(done_id)).HasField("no_worker")
    # One that never started waits for the newest deployment of its service.
    queued = await client.send("Greeter", "greet", "Bo")
    absent = (await client.get_invocation(queued)).no_worker
    assert absent.deployment_id == w.deployment_id


async def test_resume_moves_a_stranded_ready_invocation_to_latest(server, client, op):
    ran: Counter[str] = Counter()
    _, [inv_id] = await _strand(server, client, 1, ran)

    # A ready invocation that never started goes to the newest deployment by itself.
    fresh = await client.send("Stranded", "work", 9)
    err = await op.refused("ResumeInvocation", fresh, deployment="latest")
    assert_wrong_state(err, fresh, READY)
    await op.kill(fresh)

    async with Worker([_stranded("b", Gates(), ran)], server=server.address, deployment="b") as b:
        resumed = await op.resume(inv_id, deployment="latest", reason="a is gone")
        assert (resumed.state, resumed.deployment_id) == (READY, b.deployment_id)
        done = await client.attach(inv_id)

    assert done.outcome == pb.OUTCOME_SUCCEEDED
    # Step one was journaled on a and replayed on b; step two never finished on a.
    assert done.output == '"one@a+two@b"'
    assert ran == {"one@a": 1, "two@a": 1, "two@b": 1}
    journal = await client.get_journal(inv_id)
    assert [(t.event, t.from_state, t.to_state) for t in journal.transitions][-3:] == [
        ("resumed", READY, READY),
        ("claimed", READY, pb.INVOCATION_STATE_RUNNING),
        ("completed", pb.INVOCATION_STATE_RUNNING, pb.INVOCATION_STATE_COMPLETED),
    ]


async def test_bulk_resume_moves_every_invocation_of_a_deployment(server, client):
    ran: Counter[str] = Counter()
    dp_a, ids = await _strand(server, client, 3, ran)
    async with Worker([_stranded("b", Gates(), ran)], server=server.address, deployment="b") as b:
        code, out, err = await invoctl(
            server, "invocations", "resume", "--deployment-id", dp_a, "--deployment", "latest",
            "--yes", "--reason", "drain a",
        )  # fmt: skip
        assert code == 0, err
        assert "resume completed: 3 succeeded, 0 skipped, 0 failed" in out
        done = await asyncio.gather(*(client.attach(i) for i in ids))
    assert {(d.outcome, d.deployment_id) for d in done} == {(pb.OUTCOME_SUCCEEDED, b.deployment_id)}
    assert ran == {"one@a": 3, "two@a": 3, "two@b": 3}
    deps = {d.identity: d for d in await client.list_deployments()}
    assert deps["a"].pinned_invocations == 0


async def test_a_hello_naming_an_unknown_deployment_is_refused(workers):
    hello = wpb.ConnectRequest(hello=wpb.WorkerHello(deployment_id="dp_" + "A" * 22))

    async def requests():
        yield hello

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        async for _ in workers.Connect(requests()):
            pass
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    assert _reason(refused.value) == "DEPLOYMENT_NOT_FOUND"


async def test_a_worker_registers_again_when_the_server_forgot_its_deployment(postgres, database):
    """A new database behind the same address (a restore, a fresh environment): the worker's
    hello names a deployment the server does not know, so it registers its identity again
    and serves on, by itself."""
    first = await App.start(server_config(database))
    port = first.address.rsplit(":", 1)[1]
    worker = Worker([greeter()], server=first.address)
    async with fresh_database(postgres) as other, worker:
        old = worker.deployment_id
        await first.stop(grace=0)
        second = await App.start(server_config(other, listen=f"127.0.0.1:{port}"))
        try:
            async with Client(second.address) as fresh:

                async def served():
                    try:
                        found = await fresh.list_deployments()
                    except InvoctlError as err:
                        # The channel may still be backing off from the first server's
                        # refusals (gRPC shares subchannels between channels).
                        if err.code != grpc.StatusCode.UNAVAILABLE:
                            raise
                        return None
                    return found if found and found[0].sessions else None

                [dep] = await wait_for(served, what="the worker to register again")
                assert await fresh.invoke("Greeter", "greet", "Ada") == "Hello, Ada!"
        finally:
            await second.stop(grace=0)
    assert dep.identity == worker.deployment and dep.id == worker.deployment_id != old
