"""Operator actions on one invocation: latency one at a time, throughput 32 at a time,
over gRPC and, for kill and cancel, over the HTTP API (Restate's PATCH routes, from an
aiohttp client on keep-alive connections, as Restate's own figures were measured)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator

import aiohttp

from invoctl.client import Client, InvoctlError
from invoctl.v1 import invocation_pb2 as pb


async def _in_state(client: Client, ids: list[str], state: int) -> None:
    """Wait until every invocation is in `state` (the bench's setup, with a deadline)."""
    deadline = time.monotonic() + 120
    pending = set(ids)
    while pending:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(pending)} invocations never reached state {state}")
        done = await asyncio.gather(*(client.get_invocation(i) for i in list(pending)[:200]))
        pending -= {inv.id for inv in done if inv.state == state}
        await asyncio.sleep(0.1)  # setup polling, not part of any measurement


async def _measure(
    ids: list[str], op: Callable[[str], Awaitable[object]], concurrency: int
) -> tuple[float, float, float]:
    """p50 and p99 latency (ms) and operations per second over `ids`."""
    latencies: list[float] = []
    queue = iter(ids)

    async def one() -> None:
        for i in queue:
            t0 = time.perf_counter()
            await op(i)
            latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(latencies) * 1000, p99 * 1000, len(ids) / elapsed


@contextlib.contextmanager
def _stopped(pid: int) -> Iterator[None]:
    """The worker process frozen (SIGSTOP): measures the control plane alone, without the
    work the operations cause on the worker competing for the 2 cores."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


async def _worker_ready(client: Client) -> None:
    """Wait until the worker process has registered Ops (the full run's warm-up does
    this before the operator actions)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            await client.send("Ops", "wait")
            return
        except InvoctlError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)  # setup polling: the worker is still registering


def _patch(session: aiohttp.ClientSession, action: str) -> Callable[[str], Awaitable[None]]:
    """PATCH /invocations/{id}/{action} on the session's keep-alive connections."""

    async def op(inv_id: str) -> None:
        async with session.patch(f"/invocations/{inv_id}/{action}") as r:
            await r.read()
            if r.status not in (200, 202):
                raise RuntimeError(f"{action} of {inv_id}: HTTP {r.status}")

    return op


def _get(session: aiohttp.ClientSession) -> Callable[[str], Awaitable[None]]:
    """GET /invocations/{id} on the session's keep-alive connections."""

    async def op(inv_id: str) -> None:
        async with session.get(f"/invocations/{inv_id}") as r:
            await r.read()
            if r.status != 200:
                raise RuntimeError(f"GET of {inv_id}: HTTP {r.status}")

    return op


async def operator_actions(
    address: str, sequential: int, concurrent: int, worker_pid: int, *,
    http_url: str | None = None, only_http: bool = False,
) -> list[tuple]:  # fmt: skip
    """The rows; with `only_http`, the HTTP rows and the gRPC rows of the same actions."""
    rows = []
    # As many connections as requests in flight, kept alive between requests.
    connector = aiohttp.TCPConnector(limit=32)
    async with (
        Client(address) as c,
        aiohttp.ClientSession(http_url, connector=connector) as session,
    ):

        async def started(handler: str, n: int, state: int) -> list[str]:
            ids = await asyncio.gather(*(c.send("Ops", handler) for _ in range(n)))
            await _in_state(c, list(ids), state)
            return list(ids)

        async def bench(name: str, setup, op, target: str, *, frozen: bool = False) -> None:
            for n, conc in ((sequential, 1), (concurrent, 32)):
                ids = await setup(n)
                with _stopped(worker_pid) if frozen else contextlib.nullcontext():
                    p50, p99, rate = await _measure(ids, op, conc)
                rows.append((name, conc, p50, p99, rate, target))

        suspended = lambda n: started("wait", n, pb.INVOCATION_STATE_SUSPENDED)  # noqa: E731
        backing_off = lambda n: started("fail", n, pb.INVOCATION_STATE_BACKING_OFF)  # noqa: E731

        async def paused(n: int) -> list[str]:
            ids = await backing_off(n)
            await asyncio.gather(*(c.pause_invocation(i) for i in ids))
            return ids

        async def completed(n: int) -> list[str]:
            ids = await suspended(n)
            await asyncio.gather(*(c.kill_invocation(i) for i in ids))
            return ids

        if only_http:
            await _worker_ready(c)
            await bench("cancel a suspended invocation, worker frozen", suspended,
                        c.cancel_invocation, "", frozen=True)  # fmt: skip
            await bench("kill a suspended invocation", suspended, c.kill_invocation, "")
        if http_url is not None:
            # The floor: one request that reads one row, on the same connections.
            await bench("HTTP GET an invocation (floor: one request, one read)", completed,
                        _get(session), "")  # fmt: skip
            await bench("HTTP PATCH cancel of a suspended invocation, worker frozen",
                        suspended, _patch(session, "cancel"), "", frozen=True)  # fmt: skip
            await bench("HTTP PATCH kill of a suspended invocation", suspended,
                        _patch(session, "kill"), "")  # fmt: skip
        if only_http:
            return rows
        # The floor: one unary RPC that reads one row, on the same client and server.
        await bench("get an invocation (floor: one RPC, one read)", completed,
                    c.get_invocation, "")  # fmt: skip
        await bench("cancel a suspended invocation, worker frozen", suspended,
                    c.cancel_invocation, "", frozen=True)  # fmt: skip
        await bench("cancel a suspended invocation, worker compensating", suspended,
                    c.cancel_invocation, "")  # fmt: skip
        await bench("kill a suspended invocation", suspended, c.kill_invocation, "")
        await bench("pause a backing-off invocation", backing_off, c.pause_invocation, "")
        await bench("resume a paused invocation", paused, c.resume_invocation, "")
        await bench("purge a completed invocation", completed, c.purge_invocation, "")
        await bench("restart-as-new a completed invocation", completed,
                    c.restart_invocation_as_new, "")  # fmt: skip
    return rows
