"""Processes die (SIGKILL) or hang (SIGSTOP) mid-work; the work survives in Postgres.

A killed worker's attempt is retried on another replica, replaying what it journaled; a
frozen worker loses its lease the same way and its late writes are refused; a killed
server is replaced by a new process on the same address, and the surviving worker
reconnects to it by itself.
"""

from __future__ import annotations

import asyncio
import signal

from invoctl.client import Client
from invoctl.v1 import invocation_pb2 as pb
from tests.multiprocess._procs import events_of, register_steps, states_of
from tests.support import wait_for


async def test_worker_killed_mid_handler_is_retried_on_another_replica(database, db, procs):
    server = await procs.server(database)
    deployment = await register_steps(server.address)
    first = procs.worker(server.address, "w1")

    async with Client(server.address) as client:
        inv = await client.send("Steps", "gated", "g")
        # The handler is inside step two of three, with step one journaled.
        await wait_for(lambda: _ran(procs, "w1", inv, "two"), what="step two to start on w1")
        first.kill()
        procs.open_gate("g")
        procs.worker(server.address, "w2")
        done = await asyncio.wait_for(client.attach(inv), 30)
        journal = await client.get_journal(inv)

    assert done.outcome == pb.OUTCOME_SUCCEEDED
    assert done.output == '"one+two+three"'
    assert done.attempt_count == 2
    # Both processes ran the one deployment the code of steps.py is.
    assert done.deployment_id == deployment
    # Step one was replayed from the journal on w2, not run again; step two never
    # finished on w1, so it ran again.
    assert procs.execution_lines("w1", "w2") == [
        (inv, "one", 1),
        (inv, "two", 1),
        (inv, "two", 2),
        (inv, "passed", 2),
        (inv, "three", 2),
    ]
    assert [(e.name, e.completed) for e in journal.entries] == [
        ("one", True),
        ("two", True),
        ("three", True),
    ]
    assert await events_of(db, inv) == [
        ("accepted", "ingress", 0),
        ("claimed", "worker:w1", 1),
        ("lease_expired", "timer", 1),
        ("retry_due", "timer", 1),
        ("claimed", "worker:w2", 2),
        ("completed", "worker:w2", 2),
    ]


async def test_frozen_worker_loses_its_lease_and_its_late_writes_are_fenced(database, db, procs):
    server = await procs.server(database)
    await register_steps(server.address)
    # One slot, so that the retry cannot be handed back to the frozen replica (see the
    # report: the dispatcher does not avoid a session that stopped heart-beating).
    frozen = procs.worker(server.address, "w1", max_concurrency=1)
    assert frozen.proc is not None

    async with Client(server.address) as client:
        inv = await client.send("Steps", "gated", "f")
        await wait_for(lambda: _ran(procs, "w1", inv, "two"), what="step two to start on w1")
        # Frozen, not dead: its stream stays open, only its heart-beats stop.
        frozen.proc.send_signal(signal.SIGSTOP)
        procs.open_gate("f")
        procs.worker(server.address, "w2")
        done = await asyncio.wait_for(client.attach(inv), 20)
        assert done.outcome == pb.OUTCOME_SUCCEEDED
        assert done.attempt_count == 2

        # Thawed, w1 passes the gate and reports step two of attempt 1: too late.
        frozen.proc.send_signal(signal.SIGCONT)
        await wait_for(lambda: _ran(procs, "w1", inv, "passed"), what="w1 to pass the gate")
        # A graceful stop waits for w1's attempt to end, so its late write was answered.
        frozen.proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(frozen.proc.wait, 15) == 0
        journal = await client.get_journal(inv)

    assert done.output == '"one+two+three"'
    assert [(e.index, e.name) for e in journal.entries] == [(0, "one"), (1, "two"), (2, "three")]
    assert journal.invocation.state == pb.INVOCATION_STATE_COMPLETED
    assert journal.invocation.attempt_count == 2
    assert await events_of(db, inv) == [
        ("accepted", "ingress", 0),
        ("claimed", "worker:w1", 1),
        ("lease_expired", "timer", 1),
        ("retry_due", "timer", 1),
        ("claimed", "worker:w2", 2),
        ("completed", "worker:w2", 2),
    ]
    assert [(s, a) for i, s, a in procs.execution_lines("w1") if i == inv] == [
        ("one", 1),
        ("two", 1),
        ("passed", 1),
    ]


async def test_server_killed_with_sleeping_running_and_ready_work(database, db, procs):
    server = await procs.server(database)
    port = server.address.rsplit(":", 1)[1]
    await register_steps(server.address)
    # One slot: while it is held, further invocations stay ready.
    worker = procs.worker(server.address, "w", max_concurrency=1)

    async with Client(server.address) as client:
        sleepers = [await client.send("Steps", "work", 4.0) for _ in range(5)]
        await wait_for(lambda: _all_in(db, sleepers, "suspended"), what="the sleepers to suspend")
        held = await client.send("Steps", "gated", "held")
        await wait_for(lambda: _ran(procs, "w", held, "two"), what="the held attempt to start")
        ready = [await client.send("Steps", "work", 0) for _ in range(5)]
    server.kill()

    # What the dead server left in the database: nothing moves it on until a server runs.
    states = await states_of(db, [*sleepers, held, *ready])
    assert [states[i] for i in sleepers] == ["suspended"] * 5
    assert states[held] == "running"
    assert [states[i] for i in ready] == ["ready"] * 5

    procs.open_gate("held")
    # The replacement listens where the old one did, so the worker finds it by itself.
    replacement = await procs.server(database, "--listen", f"127.0.0.1:{port}")
    assert replacement.address == server.address
    async with Client(replacement.address) as client:
        done = await asyncio.wait_for(
            asyncio.gather(*(client.attach(i) for i in [*sleepers, held, *ready])), 40
        )

    assert [d.outcome for d in done] == [pb.OUTCOME_SUCCEEDED] * 11
    assert worker.proc is not None and worker.proc.poll() is None, "the worker process died"
    runs = procs.executions("w")
    for inv in [*sleepers, *ready]:
        assert (runs[inv, "one"], runs[inv, "two"]) == (1, 1), inv
    assert (runs[held, "one"], runs[held, "two"], runs[held, "three"]) == (1, 2, 1)

    for inv in sleepers:
        assert [e for e, _, _ in await events_of(db, inv)] == [
            "accepted", "claimed", "suspended", "woken", "claimed", "completed"
        ], inv  # fmt: skip
    # The attempt that ran on the dead server lapsed and was retried after the restart.
    assert [e for e, _, _ in await events_of(db, held)] == [
        "accepted", "claimed", "lease_expired", "retry_due", "claimed", "completed"
    ]  # fmt: skip
    for inv in ready:
        assert [e for e, _, _ in await events_of(db, inv)] == [
            "accepted", "claimed", "completed"
        ], inv  # fmt: skip


async def _ran(procs, worker: str, invocation_id: str, step: str) -> bool:
    return procs.executions(worker)[invocation_id, step] > 0


async def _all_in(db, ids: list[str], state: str) -> bool:
    return set((await states_of(db, ids)).values()) == {state}
