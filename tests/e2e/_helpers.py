"""Small helpers shared by the end-to-end tests: reading states, histories and row counts."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from invoctl.client import Client, state_name
from invoctl.sdk import Context, RetryPolicy, Service
from invoctl.v1 import invocation_pb2 as pb
from tests.support import wait_for

# Retries fast enough for a test, still exercising the backoff path.
FAST_RETRY = RetryPolicy(initial_interval=0.05, factor=1.0, max_interval=0.05)


async def wait_state(
    client: Client, inv_id: str, state: int, *, timeout: float = 10.0
) -> pb.Invocation:
    """Wait until the invocation is in `state` and return it."""

    async def probe() -> pb.Invocation | None:
        inv = await client.get_invocation(inv_id)
        return inv if inv.state == state else None

    return await wait_for(probe, timeout=timeout, what=f"{inv_id} to be {state_name(state)}")


async def history(client: Client, inv_id: str) -> list[tuple[str, str, str]]:
    """The transition history as (from, to, event) with operator state names."""
    journal = await client.get_journal(inv_id)
    return [
        (
            state_name(t.from_state) if t.from_state else "",
            state_name(t.to_state),
            t.event,
        )
        for t in journal.transitions
    ]


async def row_counts(db) -> dict[str, int]:
    """Rows in the tables a request could write to."""
    tables = ("invocations", "invocation_transitions", "journal_entries", "object_locks")
    return {t: await db.fetchval(f"SELECT count(*) FROM {t}") for t in tables}


class Gates:
    """Lets a test hold handlers at a point and release them. Handlers and the test share
    one event loop, so plain asyncio.Events do."""

    def __init__(self) -> None:
        self._entered: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self._release: dict[str, asyncio.Event] = {}

    def hold(self, *names: str) -> None:
        """Handlers passing through these names wait until `open`."""
        for name in names:
            self._release[name] = asyncio.Event()

    def open(self, name: str) -> None:
        self._release[name].set()

    async def pass_through(self, name: str) -> str:
        """Mark `name` entered, then wait if the test holds it."""
        self._entered[name].set()
        if name in self._release:
            await self._release[name].wait()
        return name

    async def wait_entered(self, name: str, timeout: float = 10.0) -> None:
        try:
            await asyncio.wait_for(self._entered[name].wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"timed out after {timeout}s waiting for {name!r}") from None


def greeter() -> Service:
    """Greeter/greet: one step that composes a greeting."""
    svc = Service("Greeter")

    @svc.handler()
    async def greet(ctx: Context, name: str) -> str:
        return await ctx.run("compose", lambda: f"Hello, {name}!")

    return svc
