"""Operator requests racing each other from two server processes on one database never
deadlock (issue 12, point 1): the README promises that invocations are always locked in
ID order, then object_locks, and a deadlock costs Postgres's deadlock_timeout (1 s) and a
retry of the whole batch, so requests stall for seconds.

Each round parks 60 invocations in every state an operator acts on (running, backing-off,
suspended, paused, pending behind an object key, call trees) and sends 120 random cancel,
kill, pause and resume requests at once, half through each server.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from typing import Any

import asyncpg
import grpc

from invoctl.client import Client, InvoctlError
from invoctl.sdk import Context, ObjectContext, RetryPolicy, Service, VirtualObject, Worker
from tests.e2e._operator import Operator
from tests.multiprocess._procs import deadlocks_so_far, disconnected
from tests.support import wait_for

ROUNDS = int(os.environ.get("INVOCTL_DEADLOCK_ROUNDS", "4"))
REQUESTS = 120
ANSWER_WITHIN = 2.0
OPERATIONS = ("cancel", "kill", "pause", "resume")


def _services(release: asyncio.Event) -> list[Service | VirtualObject]:
    lab = Service("Lab")

    @lab.handler()
    async def block(ctx: Context) -> str:
        await ctx.run("block", release.wait)
        return "released"

    @lab.handler(retry_policy=RetryPolicy(initial_interval=3600, max_interval=3600))
    async def fail(ctx: Context) -> None:
        raise RuntimeError("lab failure")

    @lab.handler(retry_policy=RetryPolicy(initial_interval=0.05, max_attempts=1))
    async def stuck(ctx: Context) -> None:
        raise RuntimeError("lab stuck")

    @lab.handler()
    async def nap(ctx: Context) -> None:
        await ctx.sleep(3600)

    root, middle, leaf = Service("Root"), Service("Middle"), Service("Leaf")

    @root.handler()
    async def start(ctx: Context) -> str:
        return await ctx.call("Middle", "relay")

    @middle.handler()
    async def relay(ctx: Context) -> str:
        return await ctx.call("Leaf", "work")

    @leaf.handler()
    async def work(ctx: Context) -> str:
        await ctx.run("wait", release.wait)
        return "leaf done"

    keyed = VirtualObject("Keyed")

    @keyed.handler()
    async def hold(ctx: ObjectContext) -> str:
        await ctx.run("hold", release.wait)
        return "released"

    return [lab, root, middle, leaf, keyed]


# Per round: (Lab handler, how many, the state each settles in). 12 + 10 + 10 + 6 + 4 trees of
# three + 5 keys with a holder and a pending one = 60 invocations.
PLAN = (
    ("block", 12, "running"),
    ("fail", 10, "backing-off"),
    ("nap", 10, "suspended"),
    ("stuck", 6, "paused"),
)
TREES = 4
KEYS = 5


async def _park(client, db: asyncpg.Connection, round_: int) -> list[str]:
    """Start this round's 60 invocations and wait until each settled; returns their IDs."""
    expected: dict[str, str] = {}
    for handler, count, state in PLAN:
        for inv in await asyncio.gather(*(client.send("Lab", handler) for _ in range(count))):
            expected[inv] = state
    roots = list(await asyncio.gather(*(client.send("Root", "start") for _ in range(TREES))))
    for n in range(KEYS):
        key = f"r{round_}k{n}"
        holder = await client.send("Keyed", "hold", key=key)
        expected[holder] = "running"
        expected[await client.send("Keyed", "hold", key=key)] = "pending"

    async def settled() -> list[str] | None:
        trees = await db.fetch(
            "SELECT r.id AS root, m.id AS middle, l.id AS leaf, l.state FROM invocations r"
            " JOIN invocations m ON m.caller_id = r.id JOIN invocations l ON l.caller_id = m.id"
            " WHERE r.id = ANY($1::text[])",
            roots,
        )
        states = dict(
            await db.fetch(
                "SELECT id, state FROM invocations WHERE id = ANY($1::text[])", list(expected)
            )
        )
        if len(trees) < TREES or any(t["state"] != "running" for t in trees):
            return None
        if any(states.get(i) != s for i, s in expected.items()):
            return None
        return [*expected, *(t[c] for t in trees for c in ("root", "middle", "leaf"))]

    ids = await wait_for(settled, timeout=30, what=f"round {round_}'s invocations to settle")
    assert len(ids) == 60
    return ids


async def _request(operator: Operator, op: str, inv: str) -> tuple[str, str, float, Any]:
    started = time.monotonic()
    try:
        result: Any = await getattr(operator, op)(inv)
    except InvoctlError as err:
        result = err
    return op, inv, time.monotonic() - started, result


def _log_size(log_path) -> int:
    return os.path.getsize(log_path) if os.path.exists(log_path) else 0


def _deadlock_lines(log_path, offset: int) -> str:
    """What the Postgres log said about deadlocks since `offset`: the statements involved."""
    with open(log_path, errors="replace") as f:
        f.seek(offset)
        lines = f.read().splitlines()
    out = []
    for n, line in enumerate(lines):
        if "deadlock detected" in line:
            out.extend(lines[n : n + 8])
    return "\n".join(out[:80])


async def test_operator_requests_from_two_servers_never_deadlock(postgres, database, db, procs):
    log_path = postgres.log
    offset = _log_size(log_path)
    before = await deadlocks_so_far(db)
    a, b = await procs.servers(database, 2)
    release = asyncio.Event()
    slow: list[tuple[str, str, float, Any]] = []
    wrong: list[tuple[str, str, float, Any]] = []
    try:
        async with (
            Worker(_services(release), server=a.address, name="lab", max_concurrency=1000),
            Operator(a.address) as via_a,
            Operator(b.address) as via_b,
            Client(a.address) as client,
        ):
            for round_ in range(ROUNDS):
                ids = await _park(client, db, round_)
                rng = random.Random(round_)
                requests = [
                    _request(rng.choice((via_a, via_b)), rng.choice(OPERATIONS), rng.choice(ids))
                    for _ in range(REQUESTS)
                ]
                for answer in await asyncio.gather(*requests):
                    _op, _inv, elapsed, result = answer
                    if elapsed > ANSWER_WITHIN:
                        slow.append(answer)
                    if isinstance(result, InvoctlError) and (
                        result.code != grpc.StatusCode.FAILED_PRECONDITION
                    ):
                        wrong.append(answer)
            release.set()
    finally:
        release.set()
        a.stop()
        b.stop()

    await disconnected(db)
    deadlocks = await deadlocks_so_far(db) - before
    details = _deadlock_lines(log_path, offset) if deadlocks else ""
    assert deadlocks == 0, f"{deadlocks} deadlocks in {ROUNDS} rounds:\n{details}"
    assert not wrong, f"{len(wrong)} requests refused other than by state: {wrong[:5]}"
    assert not slow, (
        f"{len(slow)} of {ROUNDS * REQUESTS} requests took over {ANSWER_WITHIN}s: "
        f"{sorted(s[2] for s in slow)[-5:]}"
    )
