"""Every statement the server runs is planned with index access, whatever the statistics
(issue 15): a fresh or fast-growing database has none, and a plan made then (or cached
while the table was tiny) must not scan the whole table once it is large.

A real server runs a workload that reaches the hot paths (invoke, dispatch, journal
appends, suspensions, timers, calls, every operator action, call trees, a bulk page, the
background loops) over a database of 50,000 invocations that was never analyzed. Its
connections load auto_explain, so Postgres logs the plan of every statement it executes:
the generic plan the server's pool asks for (`plan_cache_mode=force_generic_plan`, see
store/db.py), or the custom plan of a listing of optional filters. Any sequential scan of
invocations or journal_entries fails the test.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from urllib.parse import urlencode

from invoctl.client import Client, selector
from invoctl.sdk import Worker
from invoctl.v1 import invocation_pb2 as pb
from invoctl_server.api.operator import ACTIONS
from invoctl_server.app import App
from invoctl_server.store import complete_statement, single_statement
from invoctl_server.store._sql import Q
from tests.conftest import server_config
from tests.e2e._helpers import greeter
from tests.e2e._operator import Lab, Operator, start_call_tree
from tests.e2e.test_operator_kill import tree_services

ROWS = 50_000
BIG = ("invocations", "journal_entries")
# Statements allowed to read a whole table, and why.
WHOLE_TABLE = {
    # The metrics endpoint counts every state, at most every --metrics-refresh-seconds.
    Q["metrics_invocation_states"],
}
S = pb

PLAN_SETTINGS = {
    "session_preload_libraries": "auto_explain",
    "auto_explain.log_min_duration": "0",
    "auto_explain.log_format": "json",
}


async def _fill(db) -> None:
    """50,000 completed and suspended invocations with journals, some with callers, and
    no statistics (autovacuum would analyze them while the test runs)."""
    for table in ("invocations", "journal_entries", "invocation_transitions"):
        await db.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
    await db.execute(
        "INSERT INTO deployments (id, created_at) VALUES ('dp_' || repeat('0', 22), now())"
    )
    await db.execute(
        """
        INSERT INTO invocations (id, service, handler, exclusive, state, outcome, input,
            deployment_id, caller_id, caller_entry, attempt, journal_length, created_at,
            modified_at, completed_at, expires_at)
        SELECT 'inv_-' || lpad(g::text, 21, '0'), 'Old', 'h', false,
            CASE WHEN g % 2 = 0 THEN 'completed' ELSE 'suspended' END,
            CASE WHEN g % 2 = 0 THEN 'succeeded' END, 'null', 'dp_' || repeat('0', 22),
            CASE WHEN g % 3 = 0 THEN 'inv_-' || lpad((g / 3)::text, 21, '0') END,
            CASE WHEN g % 3 = 0 THEN 0 END, 1, 2, now(), now(),
            CASE WHEN g % 2 = 0 THEN now() END,
            CASE WHEN g % 2 = 0 THEN now() + interval '1 day' END
        FROM generate_series(1, $1) AS g
        """,
        ROWS,
    )
    await db.execute(
        """
        INSERT INTO journal_entries (invocation_id, idx, kind, completed, created_at)
        SELECT 'inv_-' || lpad(g::text, 21, '0'), i, 'run', true, now()
        FROM generate_series(1, $1) AS g, generate_series(0, 1) AS i
        """,
        ROWS,
    )
    assert (
        await db.fetchval(
            "SELECT count(*) FROM pg_stats WHERE tablename = ANY($1::text[])", list(BIG)
        )
        == 0
    )


def _plans(log: str) -> Iterator[dict]:
    """The JSON plans auto_explain wrote into a piece of the server log."""
    decoder = json.JSONDecoder()
    for piece in log.split("plan:\n")[1:]:
        plan, _ = decoder.raw_decode(piece.lstrip())
        yield plan


def _whole_table_scans(node: dict) -> Iterator[str]:
    if node.get("Node Type") == "Seq Scan" and node.get("Relation Name") in BIG:
        yield node["Relation Name"]
    for child in node.get("Plans", []):
        yield from _whole_table_scans(child)


async def _workload(address: str, client: Client) -> None:
    async with Lab(address, client) as lab, Operator(address) as op:
        made = {state: await lab.make(state) for state in (
            S.INVOCATION_STATE_PENDING, S.INVOCATION_STATE_SCHEDULED, S.INVOCATION_STATE_RUNNING,
            S.INVOCATION_STATE_BACKING_OFF, S.INVOCATION_STATE_SUSPENDED,
            S.INVOCATION_STATE_PAUSED, S.INVOCATION_STATE_COMPLETED,
        )}  # fmt: skip
        await client.get_invocation(made[S.INVOCATION_STATE_SUSPENDED])
        await client.get_journal(made[S.INVOCATION_STATE_COMPLETED])
        await op.cancel(made[S.INVOCATION_STATE_SUSPENDED])
        await op.pause(made[S.INVOCATION_STATE_BACKING_OFF])
        await op.resume(made[S.INVOCATION_STATE_PAUSED], deployment="latest")
        await op.resume(await lab.make(S.INVOCATION_STATE_PAUSED))  # one statement (keep)
        await op.kill(made[S.INVOCATION_STATE_RUNNING])
        await op.cancel(made[S.INVOCATION_STATE_SCHEDULED])
        await op.kill(made[S.INVOCATION_STATE_PENDING])
        completed = made[S.INVOCATION_STATE_COMPLETED]
        async with Worker([greeter()], server=address):
            greeted = await client.send("Greeter", "greet", "Ada")
            await client.attach(greeted)
            restarted = await op.restart(greeted, from_entry=1)  # replays the prefix
            await client.attach(restarted.id)
        await op.purge_journal(await lab.make(S.INVOCATION_STATE_COMPLETED))
        await op.purge(completed)
        release = asyncio.Event()
        async with Worker(tree_services(release, {}), server=address):
            root, _, _ = await start_call_tree(client)
            await op.kill(root)
            root, _, _ = await start_call_tree(client)
            await op.cancel(root)
            release.set()
            await client.attach(root)
        naps = [await lab.make(S.INVOCATION_STATE_SUSPENDED) for _ in range(3)]
        async for _ in client.bulk_operation("cancel", selector(invocation_ids=naps)):
            pass
        await asyncio.gather(*(client.attach(i) for i in naps))
        await op.audit()
        # Listings of optional filters run with custom plans: each must use its filter's
        # index (or walk the primary key to the page's end).
        await client.list_invocations()
        await client.list_invocations(service="Old", states=[S.INVOCATION_STATE_SUSPENDED])
        await client.list_audit_entries(invocation_id=completed)


async def test_every_statement_is_planned_with_index_access(postgres, database, db):
    await _fill(db)
    dsn = f"{database}{'&' if '?' in database else '?'}{urlencode(PLAN_SETTINGS)}"
    start = postgres.log.stat().st_size
    app = await App.start(server_config(dsn))
    try:
        async with Client(app.address) as client:
            await _workload(app.address, client)
    finally:
        await app.stop(grace=0)
    log = (await asyncio.to_thread(postgres.log.read_bytes))[start:].decode(errors="replace")

    plans = list(_plans(log))
    texts = {p["Query Text"].strip() for p in plans}
    # The workload reached the statements this test is about.
    for name in ("invocations_lock_batch", "journal_append_many",
                 "invocations_lock_with_callers", "ready_claim", "due_claim",
                 "invocations_page", "audit_page"):  # fmt: skip
        assert Q[name] in texts, f"the workload never ran {name}"
    for rpc, kind in ACTIONS.items():
        if single_statement.supports(kind):
            assert single_statement.statement(kind, rpc) in texts, f"never ran {rpc}'s"
    assert complete_statement.statement() in texts, "no completion took the one statement"
    assert single_statement.statement("cancel", None) in texts, "no bulk page took it"
    scans = {
        p["Query Text"].strip(): sorted(set(_whole_table_scans(p["Plan"])))
        for p in plans
        if p["Query Text"].strip() not in WHOLE_TABLE
    }
    bad = {text: tables for text, tables in scans.items() if tables}
    assert not bad, "statements that scan a whole table:\n\n" + "\n\n".join(
        f"{tables}:\n{text}" for text, tables in bad.items()
    )


async def test_listing_is_planned_with_index_access(database, db):
    await _fill(db)
    unset = (None,) * 4  # outcome, created before and after, idempotency key
    for args in (
        (None, None, None, None, None, None, 101, *unset),
        ("Old", None, None, ["suspended"], None, None, 101, *unset),
        (None, None, None, None, None, "inv_-" + "0" * 15 + "040000", 101, *unset),
    ):
        [plan] = json.loads(
            await db.fetchval("EXPLAIN (FORMAT JSON) " + Q["invocations_page"], *args)
        )
        assert not list(_whole_table_scans(plan["Plan"])), (args, plan)


async def test_the_second_walk_of_call_trees_is_planned_with_index_access(database, db):
    # Run only when a member called more while a kill or cancel waited for its lock (see
    # test_operator_kill), so the workload above rarely reaches it: its generic plan.
    await _fill(db)
    await db.execute("SET plan_cache_mode = force_generic_plan")
    await db.execute("PREPARE walk AS " + Q["invocation_call_trees"])
    [plan] = json.loads(
        await db.fetchval("EXPLAIN (FORMAT JSON) EXECUTE walk('{inv_-000000000000000000003}')")
    )
    assert not list(_whole_table_scans(plan["Plan"])), plan


def _index_names(node: dict) -> Iterator[str]:
    if "Index Name" in node:
        yield node["Index Name"]
    for child in node.get("Plans", []):
        yield from _index_names(child)


async def test_call_tree_walks_read_the_index_of_calls_in_flight(database, db):
    # invocations_by_caller holds only not-completed callees (migration 0009): the walks'
    # `state <> 'completed'` must keep implying its predicate in their generic plans.
    await _fill(db)
    await db.execute("SET plan_cache_mode = force_generic_plan")
    await db.execute("PREPARE walk AS " + Q["invocation_call_trees"])
    await db.execute("PREPARE batch AS " + Q["invocations_lock_batch"])
    roots = "'{inv_-000000000000000000003}'"
    for statement in (f"walk({roots})", f"batch({roots}, {roots})"):
        [plan] = json.loads(await db.fetchval(f"EXPLAIN (FORMAT JSON) EXECUTE {statement}"))
        assert "invocations_by_caller" in set(_index_names(plan["Plan"])), plan


async def test_an_invocations_history_is_read_by_its_primary_key(database, db):
    # (invocation_id, id) is the one index of invocation_transitions (migration 0009).
    await _fill(db)
    await db.execute(
        """
        INSERT INTO invocation_transitions (invocation_id, to_state, event, actor, at, attempt)
        SELECT 'inv_-' || lpad(g::text, 21, '0'), 'suspended', 'accepted', 'test', now(), 0
        FROM generate_series(1, $1) AS g
        """,
        ROWS,
    )
    await db.execute("SET plan_cache_mode = force_generic_plan")
    await db.execute("PREPARE history AS " + Q["transitions_of"])
    [plan] = json.loads(
        await db.fetchval("EXPLAIN (FORMAT JSON) EXECUTE history('inv_-000000000000000000003')")
    )
    assert set(_index_names(plan["Plan"])) == {"invocation_transitions_pkey"}, plan
