"""A deployment is a version, served by any number of worker processes (issue 11).

Every process here runs tests/workers/steps.py and registers by itself, with the identity
the SDK derives from that code: a restarted process (after `kill -9`) and a second replica
are the same deployment, so the invocations pinned to it run on whichever is alive.
"""

from __future__ import annotations

import asyncio

from invoctl.client import Client
from invoctl.v1 import invocation_pb2 as pb
from tests.multiprocess._procs import states_of
from tests.support import wait_for

SUSPENDED = "suspended"


async def _connected(client: Client, *names: str):
    """Wait until exactly the named worker processes are connected to the one deployment
    there is, and return that deployment."""

    async def probe():
        deployments = await client.list_deployments()
        if len(deployments) != 1:
            return None
        dep = deployments[0]
        return dep if sorted(s.worker_name for s in dep.sessions) == sorted(names) else None

    return await wait_for(probe, what=f"workers {names} connected")


async def _in_state(db, ids: list[str], state: str) -> bool:
    return set((await states_of(db, ids)).values()) == {state}


async def test_a_restarted_worker_process_finishes_what_the_killed_one_started(database, db, procs):
    server = await procs.server(database)
    first = procs.worker(server.address, "w1")
    async with Client(server.address) as client:
        dep = await _connected(client, "w1")
        assert dep.identity.startswith("code@")
        # One suspends on a durable sleep; the other is inside step two of three.
        sleeper = await client.send("Steps", "work", 3.0)
        held = await client.send("Steps", "gated", "g")
        await wait_for(lambda: _in_state(db, [sleeper], SUSPENDED), what="the sleeper to suspend")
        await wait_for(
            lambda: _ran(procs, "w1", held, "two"), what="the held attempt to enter step two"
        )
        first.kill()
        procs.open_gate("g")
        procs.worker(server.address, "w2")  # the same code, started again
        again = await _connected(client, "w2")
        done = await asyncio.wait_for(
            asyncio.gather(client.attach(sleeper), client.attach(held)), 30
        )
        [after] = await client.list_deployments()

    assert again.id == dep.id
    assert [d.outcome for d in done] == [pb.OUTCOME_SUCCEEDED] * 2
    assert {d.deployment_id for d in done} == {dep.id}
    assert [d.output for d in done] == ['"one+two"', '"one+two+three"']
    # Completed steps were replayed on w2, not run again; step two of the held one never
    # finished on w1, so it ran again.
    assert sorted(procs.execution_lines("w1")) == sorted(
        [(sleeper, "one", 1), (held, "one", 1), (held, "two", 1)]
    )
    assert sorted(procs.execution_lines("w2")) == sorted(
        [(sleeper, "two", 2), (held, "two", 2), (held, "passed", 2), (held, "three", 2)]
    )
    assert after.pinned_invocations == 0


async def test_replicas_share_the_work_and_one_finishes_what_the_other_started(database, db, procs):
    server = await procs.server(database)
    wa = procs.worker(server.address, "wa", max_concurrency=4)
    procs.worker(server.address, "wb", max_concurrency=4)
    async with Client(server.address) as client:
        dep = await _connected(client, "wa", "wb")
        sent = await asyncio.gather(*(client.send("Steps", "work", 2.0) for _ in range(40)))
        # Every one has run its first step and sleeps; then replica wa dies.
        await wait_for(lambda: _in_state(db, sent, SUSPENDED), what="all 40 to suspend")
        wa.kill()
        await _connected(client, "wb")
        done = await asyncio.wait_for(asyncio.gather(*(client.attach(i) for i in sent)), 30)

    assert [d.outcome for d in done] == [pb.OUTCOME_SUCCEEDED] * 40
    assert {d.deployment_id for d in done} == {dep.id}
    runs = {name: procs.executions(name) for name in ("wa", "wb")}
    # Both replicas took first steps; every step ran exactly once across the two.
    firsts = {name: {i for i, step in r if step == "one"} for name, r in runs.items()}
    assert firsts["wa"] and firsts["wb"] and firsts["wa"].isdisjoint(firsts["wb"])
    assert firsts["wa"] | firsts["wb"] == set(sent)
    # Everything wa started was finished by wb.
    assert {i for i, step in runs["wb"] if step == "two"} == set(sent)
    assert all(n == 1 for r in runs.values() for n in r.values())


async def test_sessions_of_a_killed_server_stop_counting_and_are_swept(database, db, procs):
    a, b = await procs.servers(database, 2)
    procs.worker(a.address, "w")
    async with Client(b.address) as via_b:
        dep = await _connected(via_b, "w")
        assert a.proc is not None
        assert [s.server for s in dep.sessions] == [f"server-{a.proc.pid}"]
        a.kill()  # its stream to the worker dies with it, and nobody deletes its row
        # Server b stops counting the session once the lease (2 s) passed unrefreshed...
        gone = await _connected(via_b)
        assert gone.HasField("last_seen_at")

    # ...and a cleaner sweeps its row, keeping when the deployment was last seen.
    async def swept() -> bool:
        return await db.fetchval("SELECT count(*) FROM worker_sessions") == 0

    await wait_for(swept, what="the dead server's session rows to be swept")
    assert await db.fetchval("SELECT last_seen_at FROM deployments WHERE id = $1", dep.id)


async def _ran(procs, worker: str, invocation_id: str, step: str) -> bool:
    return procs.executions(worker)[invocation_id, step] > 0
