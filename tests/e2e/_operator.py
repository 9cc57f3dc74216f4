"""Helpers of the operator tests (DESIGN.md section 4): the control RPCs over the raw
generated stubs, a worker that parks invocations in every state, and history checks."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from google.protobuf.message import Message

from invoctl.client import Client, InvoctlError, error_from_rpc_error, state_name
from invoctl.sdk import Context, ObjectContext, RetryPolicy, Service, VirtualObject, Worker
from invoctl.v1 import control_pb2, control_pb2_grpc
from invoctl.v1 import invocation_pb2 as pb
from tests.e2e._helpers import wait_state
from tests.support import wait_for

UNKNOWN_ID = "inv_" + "A" * 22
MALFORMED_IDS = ("not-an-id", "inv_123")
OPERATOR = "operator:anonymous"

FAILED_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND

# Every single-invocation operation, by RPC name.
OPERATIONS = (
    "CancelInvocation",
    "KillInvocation",
    "PauseInvocation",
    "ResumeInvocation",
    "PurgeInvocation",
    "PurgeJournal",
    "RestartInvocationAsNew",
)

S = pb  # short alias for the state constants below
ALL_STATES = (
    S.INVOCATION_STATE_PENDING,
    S.INVOCATION_STATE_SCHEDULED,
    S.INVOCATION_STATE_READY,
    S.INVOCATION_STATE_RUNNING,
    S.INVOCATION_STATE_BACKING_OFF,
    S.INVOCATION_STATE_SUSPENDED,
    S.INVOCATION_STATE_PAUSED,
    S.INVOCATION_STATE_COMPLETED,
)
NOT_COMPLETED = ALL_STATES[:-1]

# DESIGN.md section 4, "allowed from": the states each operation refuses.
REFUSED_FROM: dict[str, tuple[int, ...]] = {
    "CancelInvocation": (S.INVOCATION_STATE_COMPLETED,),
    "KillInvocation": (S.INVOCATION_STATE_COMPLETED,),
    "PauseInvocation": (
        S.INVOCATION_STATE_PENDING,
        S.INVOCATION_STATE_SCHEDULED,
        S.INVOCATION_STATE_READY,
        S.INVOCATION_STATE_SUSPENDED,
        S.INVOCATION_STATE_COMPLETED,
    ),
    "ResumeInvocation": (
        S.INVOCATION_STATE_PENDING,
        S.INVOCATION_STATE_SCHEDULED,
        S.INVOCATION_STATE_READY,
        S.INVOCATION_STATE_RUNNING,
        S.INVOCATION_STATE_COMPLETED,
    ),
    "PurgeInvocation": NOT_COMPLETED,
    "PurgeJournal": NOT_COMPLETED,
    "RestartInvocationAsNew": NOT_COMPLETED,
}


class Operator:
    """The InvocationControl operator RPCs on a grpc.aio channel of its own. A refused
    request raises InvoctlError, decoded from the server's ErrorInfo."""

    def __init__(self, address: str, *, metadata: tuple[tuple[str, str], ...] = ()) -> None:
        self.address = address
        self.metadata = metadata
        self._channel: grpc.aio.Channel | None = None
        self.stub: control_pb2_grpc.InvocationControlStub

    async def __aenter__(self) -> Operator:
        self._channel = grpc.aio.insecure_channel(self.address)
        self.stub = control_pb2_grpc.InvocationControlStub(self._channel)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._channel is not None
        await self._channel.close()

    async def call(self, rpc: str, invocation_id: str, **fields: Any) -> Message:
        """Send `<rpc>Request(invocation_id=..., **fields)` and return the response."""
        request = getattr(control_pb2, f"{rpc}Request")(invocation_id=invocation_id, **fields)
        try:
            return await getattr(self.stub, rpc)(request, timeout=20, metadata=self.metadata)
        except grpc.aio.AioRpcError as err:
            raise error_from_rpc_error(err) from None

    async def refused(self, rpc: str, invocation_id: str, **fields: Any) -> InvoctlError:
        """The error a request that must be refused was refused with."""
        try:
            response = await self.call(rpc, invocation_id, **fields)
        except InvoctlError as err:
            return err
        raise AssertionError(f"{rpc}({invocation_id}, {fields}) was accepted: {response}")

    async def cancel(self, invocation_id: str, **fields: Any) -> pb.Invocation:
        return (await self.call("CancelInvocation", invocation_id, **fields)).invocation

    async def kill(self, invocation_id: str, **fields: Any) -> pb.Invocation:
        return (await self.call("KillInvocation", invocation_id, **fields)).invocation

    async def pause(self, invocation_id: str, **fields: Any) -> pb.Invocation:
        return (await self.call("PauseInvocation", invocation_id, **fields)).invocation

    async def resume(self, invocation_id: str, **fields: Any) -> pb.Invocation:
        return (await self.call("ResumeInvocation", invocation_id, **fields)).invocation

    async def purge(self, invocation_id: str, **fields: Any) -> pb.Invocation:
        return (await self.call("PurgeInvocation", invocation_id, **fields)).invocation

    async def purge_journal(self, invocation_id: str, **fields: Any) -> pb.Invocation:
        return (await self.call("PurgeJournal", invocation_id, **fields)).invocation

    async def restart(self, invocation_id: str, **fields: Any) -> pb.Invocation:
        return (await self.call("RestartInvocationAsNew", invocation_id, **fields)).invocation

    async def audit_page(
        self, invocation_id: str = "", page_size: int = 0, page_token: str = ""
    ) -> control_pb2.ListAuditEntriesResponse:
        request = control_pb2.ListAuditEntriesRequest(
            invocation_id=invocation_id, page_size=page_size, page_token=page_token
        )
        try:
            return await self.stub.ListAuditEntries(request, timeout=20, metadata=self.metadata)
        except grpc.aio.AioRpcError as err:
            raise error_from_rpc_error(err) from None

    async def audit(self, invocation_id: str = "") -> list[control_pb2.AuditEntry]:
        """Every audit entry (about `invocation_id` if given), newest first."""
        entries: list[control_pb2.AuditEntry] = []
        token = ""
        while True:
            page = await self.audit_page(invocation_id, page_token=token)
            entries.extend(page.entries)
            token = page.next_page_token
            if not token:
                return entries


async def callee_of(client: Client, caller_id: str) -> str:
    """The invocation `caller_id` called (waiting until there is one)."""

    async def probe() -> str | None:
        invs, _ = await client.list_invocations()
        ids = [i.id for i in invs if i.caller_id == caller_id]
        return ids[0] if ids else None

    return await wait_for(probe, what=f"the callee of {caller_id}")


async def start_call_tree(client: Client) -> tuple[str, str, str]:
    """Send Root/start to a worker whose Root calls a middle invocation that calls a leaf
    (the tree_services of the kill and cancel tests) and wait until the leaf runs: the
    IDs of root, middle and leaf."""
    root = await client.send("Root", "start")
    middle = await callee_of(client, root)
    leaf = await callee_of(client, middle)
    await wait_state(client, leaf, pb.INVOCATION_STATE_RUNNING)
    return root, middle, leaf


def assert_refused(err: InvoctlError, code: grpc.StatusCode, reason: str, **metadata: str) -> None:
    assert (err.code, err.reason) == (code, reason), repr(err)
    for key, value in metadata.items():
        assert err.metadata.get(key) == value, (key, repr(err))


def assert_wrong_state(err: InvoctlError, invocation_id: str, state: int) -> None:
    """Refused as INVALID_STATE_TRANSITION, naming the invocation and its current state."""
    assert_refused(
        err,
        FAILED_PRECONDITION,
        "INVALID_STATE_TRANSITION",
        state=state_name(state),
        invocation_id=invocation_id,
    )


async def transitions(client: Client, invocation_id: str) -> list[pb.Transition]:
    return list((await client.get_journal(invocation_id)).transitions)


def assert_history_is_a_chain(steps: list[pb.Transition]) -> None:
    """Every transition starts from the state the previous one left the invocation in."""
    previous = pb.INVOCATION_STATE_UNSPECIFIED
    for n, t in enumerate(steps):
        assert t.from_state == previous, (
            f"transition {n} ({t.event}) goes {state_name(t.from_state)} -> "
            f"{state_name(t.to_state)} but the invocation was {state_name(previous)}: "
            + ", ".join(f"{state_name(s.from_state)}->{state_name(s.to_state)}" for s in steps)
        )
        previous = t.to_state


async def invocation_row(db, invocation_id: str) -> dict[str, Any] | None:
    """The invocation's row, without the columns a live lease or a heartbeat may move."""
    row = await db.fetchrow("SELECT * FROM invocations WHERE id = $1", invocation_id)
    if row is None:
        return None
    out = dict(row)
    if out["state"] == "running":
        out.pop("due_at")
        out.pop("modified_at")
    return out


async def footprint(db, invocation_id: str) -> tuple[Any, ...]:
    """What an operator request on this invocation could change: its row, its history
    and journal, every invocation's state, and the object locks."""
    return (
        await invocation_row(db, invocation_id),
        await db.fetch(
            "SELECT * FROM invocation_transitions WHERE invocation_id = $1 ORDER BY id",
            invocation_id,
        ),
        await db.fetch(
            "SELECT * FROM journal_entries WHERE invocation_id = $1 ORDER BY idx", invocation_id
        ),
        await db.fetch("SELECT id, state, outcome FROM invocations ORDER BY id"),
        await db.fetch("SELECT * FROM object_locks ORDER BY service, object_key"),
    )


class Lab:
    """A worker whose handlers park invocations in every state (section 3), for the
    state matrix. `release` lets every blocked handler finish (set at teardown)."""

    def __init__(self, server: str, client: Client) -> None:
        self.server = server
        self.client = client
        self.release = asyncio.Event()
        self.worker: Worker | None = None
        self._keys = 0

    def services(self) -> list[Service | VirtualObject]:
        lab = Service("Lab")

        @lab.handler()
        async def block(ctx: Context) -> str:
            await ctx.run("block", self.release.wait)
            return "released"

        # One attempt a day: it stays backing-off while a test looks.
        @lab.handler(retry_policy=RetryPolicy(initial_interval=3600, max_interval=3600))
        async def fail(ctx: Context) -> None:
            raise RuntimeError("lab failure")

        # Its only attempt fails: it pauses (retries exhausted).
        @lab.handler(retry_policy=RetryPolicy(initial_interval=0.05, max_attempts=1))
        async def stuck(ctx: Context) -> None:
            raise RuntimeError("lab stuck")

        @lab.handler()
        async def nap(ctx: Context) -> None:
            await ctx.sleep(3600)

        @lab.handler()
        async def echo(ctx: Context, value: Any = None) -> Any:
            return value

        keyed = VirtualObject("LabKey")

        @keyed.handler()
        async def hold(ctx: ObjectContext) -> str:
            await ctx.run("hold", self.release.wait)
            return "released"

        return [lab, keyed]

    async def __aenter__(self) -> Lab:
        # A deployment nobody serves: its invocations stay ready.
        idle = Service("LabIdle")

        @idle.handler()
        async def noop(ctx: Context) -> None:
            return None

        parked = Worker([idle], server=self.server)
        await parked.register()
        await parked.stop()
        self.worker = Worker(self.services(), server=self.server, name="lab")
        await self.worker.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release.set()
        assert self.worker is not None
        await self.worker.stop(grace=2)

    async def make(self, state: int) -> str:
        """A new invocation in `state`; returns its ID."""
        c = self.client
        if state == S.INVOCATION_STATE_PENDING:
            self._keys += 1
            key = f"k{self._keys}"
            holder = await c.send("LabKey", "hold", key=key)
            await wait_state(c, holder, S.INVOCATION_STATE_RUNNING)
            inv_id = await c.send("LabKey", "hold", key=key)
        elif state == S.INVOCATION_STATE_SCHEDULED:
            inv_id = await c.send("Lab", "echo", "later", delay=3600)
        elif state == S.INVOCATION_STATE_READY:
            inv_id = await c.send("LabIdle", "noop")
        elif state == S.INVOCATION_STATE_RUNNING:
            inv_id = await c.send("Lab", "block")
        elif state == S.INVOCATION_STATE_BACKING_OFF:
            inv_id = await c.send("Lab", "fail")
        elif state == S.INVOCATION_STATE_SUSPENDED:
            inv_id = await c.send("Lab", "nap")
        elif state == S.INVOCATION_STATE_PAUSED:
            inv_id = await c.send("Lab", "stuck")
        elif state == S.INVOCATION_STATE_COMPLETED:
            inv_id = await c.send("Lab", "echo", "done")
        else:
            raise ValueError(state)
        await wait_state(c, inv_id, state)
        return inv_id
