"""InvocationControl: the operator's reads and actions on invocations."""

from __future__ import annotations

import base64

from invoctl.v1 import bulk_pb2 as bpb
from invoctl.v1 import control_pb2 as pb
from invoctl.v1 import control_pb2_grpc

from ..domain.errors import InvalidArgument, InvalidPageToken
from ..domain.ids import is_bulk_operation_id, is_invocation_id
from ..store import audit
from ..store import bulk as bulk_store
from ..store import invocations as store
from . import bulk, convert, ids
from .context import Runtime
from .errors import rpc
from .operator import operate

MAX_PAGE = 1000
DEFAULT_PAGE = 100
# A page of invocations ends early once their payloads (inputs, outputs) pass this many
# bytes, after at least one: at 1,000 invocations of up to twice --max-payload-bytes a
# page could pass what gRPC (4 GiB) or a client's receive limit takes. AIP-158 lets a
# page hold fewer than page_size; next_page_token goes on.
PAGE_BYTES = 4 * 1024 * 1024


def _page_size(requested: int) -> int:
    """The page size a List request asked for: default 100, at most 1000."""
    if requested < 0:
        raise InvalidArgument("page_size must not be negative")
    return min(requested or DEFAULT_PAGE, MAX_PAGE)


def _encode_token(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode()


def _decode_token(token: str, valid=is_invocation_id) -> str:
    try:
        last_id = base64.urlsafe_b64decode(token.encode()).decode()
    except ValueError:
        last_id = ""
    # The token is opaque to the client: whatever is wrong with it, it is not ours.
    if not valid(last_id):
        raise InvalidPageToken("page_token is not one this server issued")
    return last_id


def _bulk_rpc(name: str):
    """The servicer method of a bulk RPC: they differ only in the operation."""

    @rpc
    async def method(self, request, context):
        async for progress in bulk.start(self.rt, name, request):
            yield progress

    method.__name__ = method.__qualname__ = name
    return method


class InvocationControl(control_pb2_grpc.InvocationControlServicer):
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def _live_since(self):
        """A worker session heard of since then is connected (it heart-beats every third
        of a lease)."""
        return self.rt.now() - self.rt.config.lease

    @rpc
    async def GetInvocation(self, request, context):
        invocation_id = ids.invocation_id(request.invocation_id)
        async with self.rt.pool.acquire() as conn:
            row = await store.invocation_get_with_worker(conn, invocation_id, self._live_since())
        return pb.GetInvocationResponse(invocation=convert.invocation(row))

    @rpc
    async def ListInvocations(self, request, context):
        size = _page_size(request.page_size)
        states = convert.states(request.states)
        if request.deployment_id:
            ids.deployment_id(request.deployment_id)
        outcome = convert.outcome(request.outcome) if request.outcome else None
        before = _decode_token(request.page_token) if request.page_token else None
        async with self.rt.pool.acquire() as conn:
            rows = await store.invocations_page(
                conn,
                service=request.service or None,
                handler=request.handler or None,
                key=request.key or None,
                states=states or None,
                deployment_id=request.deployment_id or None,
                before_id=before,
                limit=size + 1,
                outcome=outcome,
                created_before=convert.optional_datetime(request, "created_before"),
                created_after=convert.optional_datetime(request, "created_after"),
                idempotency_key=request.idempotency_key or None,
            )
        page = _within(rows[:size], PAGE_BYTES)
        token = _encode_token(page[-1]["id"]) if len(rows) > len(page) else ""
        return pb.ListInvocationsResponse(
            invocations=[convert.invocation(r) for r in page], next_page_token=token
        )

    @rpc
    async def GetJournal(self, request, context):
        invocation_id = ids.invocation_id(request.invocation_id)
        async with self.rt.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            row = await store.invocation_get_with_worker(conn, invocation_id, self._live_since())
            entries = await store.journal_of(conn, invocation_id)
            history = await store.transitions_of(conn, invocation_id)
        return pb.GetJournalResponse(
            invocation=convert.invocation(row),
            entries=[convert.journal_entry(e) for e in entries],
            transitions=[convert.transition(t) for t in history],
        )

    # --- actions: each goes through operator.operate (audit log, request_id) ----------

    async def _act(self, operation: str, request, check=None):
        return await operate(
            self.rt.operator, self.rt.pool, operation=operation, request=request, check=check
        )

    @rpc
    async def CancelInvocation(self, request, context):
        return await self._act("CancelInvocation", request)

    @rpc
    async def KillInvocation(self, request, context):
        return await self._act("KillInvocation", request)

    @rpc
    async def PauseInvocation(self, request, context):
        return await self._act("PauseInvocation", request)

    @rpc
    async def ResumeInvocation(self, request, context):
        return await self._act(
            "ResumeInvocation",
            request,
            lambda: {"deployment": ids.deployment_choice(request.deployment)},
        )

    @rpc
    async def PurgeInvocation(self, request, context):
        return await self._act("PurgeInvocation", request)

    @rpc
    async def PurgeJournal(self, request, context):
        return await self._act("PurgeJournal", request)

    @rpc
    async def RestartInvocationAsNew(self, request, context):
        return await self._act(
            "RestartInvocationAsNew",
            request,
            lambda: {
                "deployment": ids.deployment_choice(request.deployment),
                "from_entry": request.from_entry,
            },
        )

    # --- bulk operations (api/bulk.py) ---------------------------------------------

    CancelInvocations = _bulk_rpc("CancelInvocations")
    KillInvocations = _bulk_rpc("KillInvocations")
    PauseInvocations = _bulk_rpc("PauseInvocations")
    ResumeInvocations = _bulk_rpc("ResumeInvocations")
    PurgeInvocations = _bulk_rpc("PurgeInvocations")
    RestartInvocationsAsNew = _bulk_rpc("RestartInvocationsAsNew")

    @rpc
    async def WatchBulkOperation(self, request, context):
        bulk_id = ids.bulk_operation_id(request.bulk_operation_id)
        async for progress in bulk.watch(self.rt, bulk_id):
            yield progress

    @rpc
    async def ListBulkOperations(self, request, context):
        size = _page_size(request.page_size)
        states = [convert.BULK_STATE_FROM_PROTO.get(s) for s in request.states]
        if None in states:
            raise InvalidArgument("states must be RUNNING, COMPLETED or STOPPED")
        before = None
        if request.page_token:
            before = _decode_token(request.page_token, is_bulk_operation_id)
        async with self.rt.pool.acquire() as conn:
            rows = await bulk_store.bulk_page(
                conn, states=states or None, before_id=before, limit=size + 1
            )
        token = _encode_token(rows[size - 1]["id"]) if len(rows) > size else ""
        return bpb.ListBulkOperationsResponse(
            bulk_operations=[convert.bulk_progress(r) for r in rows[:size]],
            next_page_token=token,
        )

    @rpc
    async def StopBulkOperation(self, request, context):
        return await bulk.stop(self.rt, request.bulk_operation_id)

    @rpc
    async def ListAuditEntries(self, request, context):
        size = _page_size(request.page_size)
        invocation_id = ids.invocation_id(request.invocation_id) if request.invocation_id else None
        before = _decode_audit_token(request.page_token) if request.page_token else None
        async with self.rt.pool.acquire() as conn:
            rows = await audit.audit_page(
                conn, invocation_id=invocation_id, before_id=before, limit=size + 1,
                identity=request.identity or None, operation=request.operation or None,
                at_or_after=convert.optional_datetime(request, "after"),
                at_before=convert.optional_datetime(request, "before"),
            )  # fmt: skip
        token = str(rows[size - 1]["id"]) if len(rows) > size else ""
        return pb.ListAuditEntriesResponse(
            entries=[convert.audit_entry(r) for r in rows[:size]], next_page_token=token
        )


def _within(rows: list, budget: int) -> list:
    """The first rows whose payloads fit in `budget` bytes; at least one."""
    total = 0
    for n, row in enumerate(rows):
        total += len(row["input"] or "") + len(row["output"] or "")
        if total > budget and n > 0:
            return rows[:n]
    return rows


def _decode_audit_token(token: str) -> int:
    if not token.isdigit():
        raise InvalidPageToken("page_token is not one this server issued")
    return int(token)
