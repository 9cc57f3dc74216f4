"""Ingress: start invocations and wait for their results."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg

from invoctl.v1 import ingress_pb2 as pb
from invoctl.v1 import ingress_pb2_grpc

from ..domain.errors import InvalidArgument, InvocationNotFound, PayloadTooLarge
from ..domain.states import State
from ..store import invocations as store
from . import convert, ids
from .context import Runtime
from .errors import rpc

# How long a waiting client trusts notifications before it re-reads the row: a
# notification can be lost while the listener reconnects.
_RECHECK_SECONDS = 5.0
ACTOR = "ingress"


class Ingress(ingress_pb2_grpc.IngressServicer):
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    @rpc
    async def Invoke(self, request, context):
        new = self._new_invocation(request)
        created = await self.rt.batches.invokes.submit(new)
        row = created.row
        if row["state"] == State.SCHEDULED:
            self.rt.timers.poke()
        if request.mode != pb.INVOKE_MODE_SEND:
            row = await self._wait_completed(row["id"], row)
        return pb.InvokeResponse(
            invocation_id=row["id"],
            invocation=convert.invocation(row),
            deduplicated=created.deduplicated,
        )

    @rpc
    async def Attach(self, request, context):
        row = await self._wait_completed(ids.invocation_id(request.invocation_id))
        return pb.AttachResponse(invocation=convert.invocation(row))

    def _new_invocation(self, request: pb.InvokeRequest) -> store.NewInvocation:
        target = request.target
        if not target.service or not target.handler:
            raise InvalidArgument("target needs a service and a handler")
        convert.known_enum(request.mode, pb.InvokeMode, "mode")
        limit = self.rt.config.max_payload_bytes
        delay = None
        if request.HasField("delay"):
            delay = request.delay.ToTimedelta()
            if delay < timedelta(0):
                raise InvalidArgument("delay must not be negative")
        headers = dict(request.headers)
        header_bytes = sum(len(k.encode()) + len(v.encode()) for k, v in headers.items())
        if header_bytes > limit:
            raise PayloadTooLarge(
                f"headers are {header_bytes} bytes; the limit is {limit}",
                field="headers",
                limit=str(limit),
            )
        return store.NewInvocation(
            service=target.service,
            handler=target.handler,
            key=target.key or None,
            input=convert.json_payload(request.input, field="input", limit=limit),
            headers=headers,
            idempotency_key=request.idempotency_key or None,
            delay=delay,
        )

    async def _wait_completed(
        self, invocation_id: str, row: asyncpg.Record | None = None
    ) -> asyncpg.Record:
        """Wait until the invocation is completed and return its row.

        `row`, if given, is the row as of a moment before this call: it saves the first read
        when it is not completed yet. Completing it takes a dispatch, an attempt and several
        round trips after that moment, so its notification finds the waiter registered; were
        it ever missed, the re-read after _RECHECK_SECONDS still returns the result.
        """
        if row is not None and row["state"] == State.COMPLETED:
            return row
        read = row is None
        while True:
            fut = self.rt.completions.register(invocation_id)
            try:
                if not read:
                    read = True  # the first wait trusts `row`; later ones read again
                else:
                    row = await self.rt.batches.reads.submit(invocation_id)
                    if row is None:
                        raise InvocationNotFound(
                            f"invocation {invocation_id} not found", invocation_id=invocation_id
                        )
                    if row["state"] == State.COMPLETED:
                        return row
                try:
                    completed = await asyncio.wait_for(fut, _RECHECK_SECONDS)
                except TimeoutError:
                    continue
                if completed is not None:  # completed on this server: no need to read it
                    return completed
            finally:
                self.rt.completions.unregister(invocation_id, fut)
