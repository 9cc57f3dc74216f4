"""Two server processes on one database: they share the work without doing any twice.

Real `python -m invoctl_server` processes and real worker processes; the only thing they
share is the Postgres database, as replicas behind a load balancer would.
"""

from __future__ import annotations

import asyncio
import itertools
import time

import asyncpg

from invoctl.client import Client
from invoctl.v1 import invocation_pb2 as pb
from invoctl_server.api.ingress import _RECHECK_SECONDS
from invoctl_server.store import db as store_db
from tests.conftest import fresh_database
from tests.multiprocess._procs import events_of, register_steps
from tests.support import wait_for

COUNT = 200
SLEEP = 0.3
_names = itertools.count()


async def test_two_servers_run_each_invocation_once(database, db, procs):
    a, b = await procs.servers(database, 2)
    await register_steps(a.address)
    # Replicas of one deployment, one connected to each server; 16 slots each, so that
    # neither can take all the work before the other has connected.
    procs.worker(a.address, "wa", max_concurrency=16)
    procs.worker(b.address, "wb", max_concurrency=16)

    async with Client(a.address) as ca, Client(b.address) as cb:
        # Half are sent through each server; every one sleeps, so both timer loops race
        # for the wake-ups.
        sent = await asyncio.gather(
            *((ca if n % 2 == 0 else cb).send("Steps", "work", SLEEP) for n in range(COUNT))
        )
        via_a = {inv for n, inv in enumerate(sent) if n % 2 == 0}
        # Each is attached on the server it was not sent through.
        done = await asyncio.wait_for(
            asyncio.gather(*((cb if inv in via_a else ca).attach(inv) for inv in sent)), 30
        )

    assert len(set(sent)) == COUNT
    assert [d.outcome for d in done] == [pb.OUTCOME_SUCCEEDED] * COUNT
    assert {d.output for d in done} == {'"one+two"'}

    # Each step's body ran exactly once, across both worker processes.
    runs = procs.executions("wa", "wb")
    twice = {key: n for key, n in runs.items() if n != 1}
    assert not twice, f"steps that ran more than once: {twice}"
    assert set(runs) == {(inv, step) for inv in sent for step in ("one", "two")}

    history = await db.fetch(
        "SELECT invocation_id, event, actor, attempt FROM invocation_transitions"
        " WHERE invocation_id = ANY($1::text[]) ORDER BY id",
        sent,
    )
    events: dict[str, list[str]] = {inv: [] for inv in sent}
    claimers: dict[str, set[str]] = {inv: set() for inv in sent}
    completer: dict[str, str] = {}
    for r in history:
        events[r["invocation_id"]].append(r["event"])
        if r["event"] == "claimed":
            claimers[r["invocation_id"]].add(r["actor"])
        if r["event"] == "completed":
            completer[r["invocation_id"]] = r["actor"]
    # One claim per attempt (before and after the sleep), one wake-up per sleep, one
    # completion; no lapsed lease and no failed attempt.
    expected = ["accepted", "claimed", "suspended", "woken", "claimed", "completed"]
    wrong = {inv: ev for inv, ev in events.items() if ev != expected}
    assert not wrong, f"{len(wrong)} histories are not {expected}, e.g. {wrong.popitem()}"
    attempts = await db.fetch(
        "SELECT attempt, count(*) AS n FROM invocations WHERE id = ANY($1::text[]) GROUP BY 1",
        sent,
    )
    assert {r["attempt"]: r["n"] for r in attempts} == {2: COUNT}

    journals = await db.fetch(
        "SELECT invocation_id, array_agg(kind || ':' || name ORDER BY idx) AS entries"
        " FROM journal_entries WHERE invocation_id = ANY($1::text[]) GROUP BY 1",
        sent,
    )
    assert {tuple(r["entries"]) for r in journals} == {("run:one", "sleep:", "run:two")}
    assert len(journals) == COUNT

    # Both servers dispatched work: each worker replica claimed some attempts.
    all_claimers = set().union(*claimers.values())
    assert all_claimers == {"worker:wa", "worker:wb"}
    # Attach on one server returned invocations completed through the other's worker.
    assert any(completer[inv] == "worker:wa" for inv in sent if inv in via_a)
    assert any(completer[inv] == "worker:wb" for inv in sent if inv not in via_a)


async def test_attach_on_one_server_wakes_on_a_completion_through_another(database, db, procs):
    a, b = await procs.servers(database, 2)
    await register_steps(a.address)
    procs.worker(a.address, "wa")  # server B has no worker at all

    async with Client(a.address) as ca, Client(b.address) as cb:
        inv = await ca.send("Steps", "gated", "attach")
        await wait_for(lambda: _ran(procs, inv, "two"), what="the handler to wait at its gate")
        attached = asyncio.create_task(cb.attach(inv))
        # Another round trip to B, so that the Attach has reached it; still running.
        assert (await cb.get_invocation(inv)).state == pb.INVOCATION_STATE_RUNNING
        assert not attached.done()
        opened = time.monotonic()
        procs.open_gate("attach")
        done = await asyncio.wait_for(attached, 30)
        waited = time.monotonic() - opened

    assert done.state == pb.INVOCATION_STATE_COMPLETED
    assert done.output == '"one+two+three"'
    history = await events_of(db, inv)
    assert [actor for event, actor, _ in history if event == "completed"] == ["worker:wa"]
    # Server B learnt of the completion by notification, not by re-reading the row after
    # its fallback interval.
    assert waited < _RECHECK_SECONDS / 2, (
        f"Attach on server B returned {waited:.1f}s after the completion on server A:"
        " the invoctl_completed notification did not reach it"
    )


async def test_an_invocation_is_claimed_with_its_acceptance_or_by_notification(database, db, procs):
    """Sent through the server its worker is connected to, an invocation is accepted and
    claimed in one transaction; sent through the other server, whose commit claims
    nothing, it wakes the first server's dispatcher by notification. The servers poll far
    less often than the test waits, so no poll does it instead."""
    a, b = await procs.servers(database, 2, "--poll-interval", "600")
    await register_steps(a.address)
    procs.worker(a.address, "wa")  # server B has no worker at all

    async def transactions(inv: str) -> dict[str, int]:
        rows = await db.fetch(
            "SELECT event, xmin::text::bigint AS tx FROM invocation_transitions"
            " WHERE invocation_id = $1 ORDER BY id",
            inv,
        )
        return {r["event"]: r["tx"] for r in rows}

    async with Client(a.address) as ca, Client(b.address) as cb:
        # Once this one completes, the worker's session is open on server A.
        warm = await ca.send("Steps", "work", 0)
        await asyncio.wait_for(ca.attach(warm), 30)
        via_a = await ca.send("Steps", "work", 0)
        via_b = await cb.send("Steps", "work", 0)
        done = await asyncio.wait_for(asyncio.gather(ca.attach(via_a), cb.attach(via_b)), 30)

    assert [d.output for d in done] == ['"one+two"'] * 2
    for inv in (via_a, via_b):
        events = await events_of(db, inv)
        assert [e for e, _, _ in events] == ["accepted", "claimed", "completed"]
        assert [actor for e, actor, _ in events if e == "claimed"] == ["worker:wa"]
    tx_a, tx_b = await transactions(via_a), await transactions(via_b)
    assert tx_a["accepted"] == tx_a["claimed"]
    assert tx_b["accepted"] != tx_b["claimed"]


async def test_servers_starting_at_once_migrate_an_empty_database_once(postgres, procs):
    async with fresh_database(postgres, template=None) as dsn:
        try:
            servers = await procs.servers(dsn, 2)
            for server in servers:
                assert server.proc is not None and server.proc.poll() is None
                async with Client(server.address) as client:
                    invocations, _ = await client.list_invocations()
                    assert invocations == []
            conn = await asyncpg.connect(dsn)
            try:
                rows = await conn.fetch("SELECT version, name FROM schema_migrations ORDER BY 1")
                tables = await conn.fetchval(
                    "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
                    " AND tablename IN ('invocations', 'journal_entries', 'deployments')"
                )
            finally:
                await conn.close()
        finally:
            procs.kill_all()
    assert [(r["version"], r["name"]) for r in rows] == [
        (v, n) for v, n, _ in store_db.migrations()
    ]
    assert tables == 3


async def _ran(procs, invocation_id: str, step: str) -> bool:
    return procs.executions("wa")[invocation_id, step] > 0
