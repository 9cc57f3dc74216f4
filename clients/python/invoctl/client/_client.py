"""The async client over invoctl's Ingress, InvocationControl and Workers services."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar

import grpc
from google.protobuf import duration_pb2
from google.protobuf.message import Message
from opentelemetry import propagate

from invoctl.v1 import (
    bulk_pb2,
    control_pb2,
    control_pb2_grpc,
    ingress_pb2,
    ingress_pb2_grpc,
    invocation_pb2,
    workers_pb2,
    workers_pb2_grpc,
)

from ..wire import CHANNEL_OPTIONS
from ._bulk import BULK_OPERATIONS, _timestamp, bulk_request
from ._errors import InvocationFailed, error_from_rpc_error
from ._names import StateLike, parse_outcome, parse_state

__all__ = ["DEFAULT_ADDRESS", "Client", "invoke_request", "output_of"]

#: Where `invoctl serve` listens by default.
DEFAULT_ADDRESS = "127.0.0.1:9090"

_Resp = TypeVar("_Resp", bound=Message)


def _duration(delay: float | dt.timedelta) -> duration_pb2.Duration:
    """Seconds or a timedelta as a Duration; negative delays are a caller bug."""
    seconds = delay.total_seconds() if isinstance(delay, dt.timedelta) else float(delay)
    if seconds < 0:
        raise ValueError(f"delay must not be negative, got {seconds}s")
    out = duration_pb2.Duration()
    out.FromNanoseconds(round(seconds * 1e9))
    return out


class Client:
    """An async invoctl client; use it as `async with Client(addr) as c: ...`.

    Every RPC failure is raised as `InvoctlError`, decoded from the server's
    `google.rpc.ErrorInfo`; a call that completes without success raises
    `InvocationFailed`. The client never retries by itself: check
    `InvoctlError.retryable` (UNAVAILABLE only).

    Args:
        address: `host:port` of any server replica.
        token: bearer token sent as `authorization` metadata on every RPC.
        credentials: TLS channel credentials (see `tls_credentials`); plaintext when None
            (the loopback default).
        timeout: deadline in seconds for RPCs that answer at once (reads, sends).
            Calls and `attach` wait for the invocation to complete and have none.
    """

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        *,
        token: str | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        timeout: float | None = 30.0,
    ) -> None:
        self.address = address
        self._credentials = credentials
        self._timeout = timeout
        self._metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {token}"),) if token else ()
        )
        self._channel: grpc.aio.Channel | None = None
        self._ingress: ingress_pb2_grpc.IngressStub
        self._control: control_pb2_grpc.InvocationControlStub
        self._workers: workers_pb2_grpc.WorkersStub

    # -- lifecycle -----------------------------------------------------------------

    def _connect(self) -> None:
        # Created lazily so that the channel binds to the event loop that uses it.
        if self._channel is not None:
            return
        if self._credentials is None:
            self._channel = grpc.aio.insecure_channel(self.address, options=CHANNEL_OPTIONS)
        else:
            self._channel = grpc.aio.secure_channel(
                self.address, self._credentials, options=CHANNEL_OPTIONS
            )
        self._ingress = ingress_pb2_grpc.IngressStub(self._channel)
        self._control = control_pb2_grpc.InvocationControlStub(self._channel)
        self._workers = workers_pb2_grpc.WorkersStub(self._channel)

    async def close(self) -> None:
        """Close the channel; RPCs still in flight are cancelled."""
        if self._channel is not None:
            channel, self._channel = self._channel, None
            await channel.close()

    async def __aenter__(self) -> Self:
        self._connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _call_metadata(self) -> tuple[tuple[str, str], ...]:
        """The metadata of one RPC: the token, and the caller's OpenTelemetry context
        (W3C `traceparent`, `tracestate`, `baggage`, or whatever the global propagator
        writes), so that the server's spans of the call join the caller's trace."""
        carrier: dict[str, str] = {}
        propagate.inject(carrier)  # writes nothing without an active span or baggage
        if not carrier:
            return self._metadata
        return (*self._metadata, *((k.lower(), v) for k, v in carrier.items()))

    async def _rpc(
        self,
        method: Callable[..., Awaitable[_Resp]],
        request: Message,
        *,
        waits: bool = False,
    ) -> _Resp:
        """Run one unary RPC, turning its failure into an InvoctlError.

        `waits` marks RPCs that block until an invocation completes: no deadline.
        """
        timeout = None if waits else self._timeout
        try:
            return await method(request, timeout=timeout, metadata=self._call_metadata())
        except grpc.aio.AioRpcError as err:
            raise error_from_rpc_error(err) from None

    # -- ingress -------------------------------------------------------------------

    async def invoke_raw(self, request: ingress_pb2.InvokeRequest) -> ingress_pb2.InvokeResponse:
        """Send an InvokeRequest as is and return the response, whatever the outcome."""
        self._connect()
        waits = request.mode != ingress_pb2.INVOKE_MODE_SEND
        return await self._rpc(self._ingress.Invoke, request, waits=waits)

    async def invoke(
        self,
        service: str,
        handler: str,
        arg: Any = None,
        *,
        key: str | None = None,
        headers: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        """Call a handler, wait for it to complete, and return its JSON-decoded output.

        Raises:
            InvocationFailed: the invocation completed failed, cancelled or killed.
            InvoctlError: the RPC failed (unknown service, bad argument, ...).
        """
        request = invoke_request(
            service, handler, arg, key=key, headers=headers, idempotency_key=idempotency_key
        )
        response = await self.invoke_raw(request)
        return output_of(response.invocation)

    async def send(
        self,
        service: str,
        handler: str,
        arg: Any = None,
        *,
        key: str | None = None,
        delay: float | dt.timedelta | None = None,
        headers: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        """Start a handler without waiting (one-way send) and return the invocation ID.

        `delay` (seconds or a timedelta) schedules it for later. With an idempotency key
        that matches a retained invocation, that invocation's ID is returned.
        """
        request = invoke_request(
            service,
            handler,
            arg,
            key=key,
            headers=headers,
            idempotency_key=idempotency_key,
            send=True,
            delay=delay,
        )
        response = await self.invoke_raw(request)
        return response.invocation_id

    async def attach(self, invocation_id: str) -> invocation_pb2.Invocation:
        """Wait for an invocation to complete and return it, with its output or failure.

        Unlike `invoke`, a failed outcome is returned, not raised.
        """
        self._connect()
        request = ingress_pb2.AttachRequest(invocation_id=invocation_id)
        response = await self._rpc(self._ingress.Attach, request, waits=True)
        return response.invocation

    # -- control plane -------------------------------------------------------------

    async def get_invocation(self, invocation_id: str) -> invocation_pb2.Invocation:
        """Return one invocation. Unknown ID: NOT_FOUND; malformed: INVALID_ARGUMENT."""
        self._connect()
        request = control_pb2.GetInvocationRequest(invocation_id=invocation_id)
        response = await self._rpc(self._control.GetInvocation, request)
        return response.invocation

    async def list_invocations(
        self,
        *,
        service: str | None = None,
        handler: str | None = None,
        key: str | None = None,
        states: Iterable[StateLike] | None = None,
        deployment_id: str | None = None,
        outcome: str | int | None = None,
        created_before: dt.datetime | None = None,
        created_after: dt.datetime | None = None,
        idempotency_key: str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
    ) -> tuple[list[invocation_pb2.Invocation], str | None]:
        """Return one page of matching invocations, newest first, and the next page's token.

        Filters combine with AND. The token is None on the last page. States take names
        (`"suspended"`, `"backing-off"`) or `InvocationState` values, the outcome a name
        (`"failed"`) or an `Outcome` value; times must be timezone-aware.

        Raises:
            ValueError: an unknown state or outcome name, or a naive datetime.
        """
        self._connect()
        request = control_pb2.ListInvocationsRequest(
            service=service or "",
            handler=handler or "",
            key=key or "",
            states=[parse_state(s) for s in states or ()],
            deployment_id=deployment_id or "",
            outcome=parse_outcome(outcome) if outcome is not None else 0,
            idempotency_key=idempotency_key or "",
            page_size=page_size or 0,
            page_token=page_token or "",
        )
        if created_before is not None:
            request.created_before.CopyFrom(_timestamp(created_before))
        if created_after is not None:
            request.created_after.CopyFrom(_timestamp(created_after))
        response = await self._rpc(self._control.ListInvocations, request)
        return list(response.invocations), response.next_page_token or None

    async def iter_invocations(
        self,
        *,
        service: str | None = None,
        handler: str | None = None,
        key: str | None = None,
        states: Iterable[StateLike] | None = None,
        deployment_id: str | None = None,
        outcome: str | int | None = None,
        created_before: dt.datetime | None = None,
        created_after: dt.datetime | None = None,
        idempotency_key: str | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[invocation_pb2.Invocation]:
        """Yield every matching invocation, newest first, fetching pages as needed."""
        # Parse once, so a bad state name fails before the first RPC.
        parsed = [parse_state(s) for s in states or ()]
        parsed_outcome = parse_outcome(outcome) if outcome is not None else None
        token: str | None = None
        while True:
            page, token = await self.list_invocations(
                service=service,
                handler=handler,
                key=key,
                states=parsed,
                deployment_id=deployment_id,
                outcome=parsed_outcome,
                created_before=created_before,
                created_after=created_after,
                idempotency_key=idempotency_key,
                page_size=page_size,
                page_token=token,
            )
            for invocation in page:
                yield invocation
            if token is None:
                return

    async def get_journal(self, invocation_id: str) -> control_pb2.GetJournalResponse:
        """Return an invocation with its journal entries and transition history."""
        self._connect()
        request = control_pb2.GetJournalRequest(invocation_id=invocation_id)
        return await self._rpc(self._control.GetJournal, request)

    # -- operator actions (DESIGN.md section 4) ------------------------------------
    #
    # Each takes an optional `reason` (kept in the audit log) and an optional
    # `request_id`: repeating a request with the same ID is a no-op that returns the
    # first result, so a caller that retries after UNAVAILABLE should pass one.

    async def _operate(
        self,
        rpc: str,
        invocation_id: str,
        reason: str | None,
        request_id: str | None,
        **fields: Any,
    ) -> invocation_pb2.Invocation:
        """Send `<rpc>Request` with the fields every action takes; the invocation after."""
        self._connect()
        request = getattr(control_pb2, f"{rpc}Request")(
            invocation_id=invocation_id, reason=reason or "", request_id=request_id or "",
            **fields,
        )  # fmt: skip
        response = await self._rpc(getattr(self._control, rpc), request)
        return response.invocation

    async def cancel_invocation(
        self, invocation_id: str, *, reason: str | None = None, request_id: str | None = None
    ) -> invocation_pb2.Invocation:
        """Cancel an invocation and its not-completed call tree; does not wait for them.

        One that has not started completes cancelled at once. A started one gets
        ``InvocationCancelled`` at its handler's next await, may compensate, and
        completes cancelled unless it handles it differently; attach to see the end. It
        reaches the leaves of the tree first: a handler waiting on a call gets it at that
        call once the callee ended, so compensation flows up. Returns the invocation
        after the change. Completed already: FAILED_PRECONDITION.
        """
        return await self._operate("CancelInvocation", invocation_id, reason, request_id)

    async def kill_invocation(
        self, invocation_id: str, *, reason: str | None = None, request_id: str | None = None
    ) -> invocation_pb2.Invocation:
        """Kill an invocation and its not-completed call tree at once, without compensation.

        Returns the invocation after the change (completed, outcome killed).
        Completed already: FAILED_PRECONDITION.
        """
        return await self._operate("KillInvocation", invocation_id, reason, request_id)

    async def pause_invocation(
        self, invocation_id: str, *, reason: str | None = None, request_id: str | None = None
    ) -> invocation_pb2.Invocation:
        """Pause a running or backing-off invocation until it is resumed.

        Returns the invocation after the change. Pausing a paused one is a no-op success;
        other states: FAILED_PRECONDITION.
        """
        return await self._operate("PauseInvocation", invocation_id, reason, request_id)

    async def resume_invocation(
        self,
        invocation_id: str,
        *,
        deployment: str | None = None,
        reason: str | None = None,
        request_id: str | None = None,
    ) -> invocation_pb2.Invocation:
        """Resume a paused, suspended or backing-off invocation with a new attempt, or
        move a ready one that started before to another deployment.

        `deployment`: `"keep"` (the default, also None), `"latest"`, or a `dp_` ID that
        serves the handler. Returns the invocation after the change. Other states (a ready
        one that never started included): FAILED_PRECONDITION; unknown deployment:
        NOT_FOUND.
        """
        return await self._operate(
            "ResumeInvocation", invocation_id, reason, request_id, deployment=deployment or ""
        )

    async def purge_invocation(
        self, invocation_id: str, *, reason: str | None = None, request_id: str | None = None
    ) -> invocation_pb2.Invocation:
        """Delete a completed invocation, its journal and history; frees its idempotency key.

        Returns the invocation as it was when deleted. Not completed: FAILED_PRECONDITION.
        """
        return await self._operate("PurgeInvocation", invocation_id, reason, request_id)

    async def purge_journal(
        self, invocation_id: str, *, reason: str | None = None, request_id: str | None = None
    ) -> invocation_pb2.Invocation:
        """Delete the journal of a completed invocation and keep its result.

        Returns the invocation after the change (journal_length 0). Not completed:
        FAILED_PRECONDITION.
        """
        return await self._operate("PurgeJournal", invocation_id, reason, request_id)

    async def restart_invocation_as_new(
        self,
        invocation_id: str,
        *,
        from_entry: int = 0,
        deployment: str | None = None,
        reason: str | None = None,
        request_id: str | None = None,
    ) -> invocation_pb2.Invocation:
        """Start a new invocation with the target, input and headers of a completed one.

        `from_entry` = N keeps the old journal's entries before N, which the new attempt
        replays before running live (0 keeps none). `deployment`: `"latest"` (the
        default, also None), `"keep"`, or a `dp_` ID. Returns the new invocation; the old
        one is untouched. Not completed or journal purged: FAILED_PRECONDITION; N out of
        range, not at a completed entry, or past where the old handler saw its
        cancellation: INVALID_ARGUMENT.

        Raises:
            ValueError: a negative `from_entry`.
        """
        if from_entry < 0:
            raise ValueError(f"from_entry must not be negative, got {from_entry}")
        return await self._operate(
            "RestartInvocationAsNew", invocation_id, reason, request_id,
            from_entry=from_entry, deployment=deployment or "",
        )  # fmt: skip

    async def list_audit_entries(
        self,
        invocation_id: str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
        *,
        identity: str | None = None,
        operation: str | None = None,
        after: dt.datetime | None = None,
        before: dt.datetime | None = None,
    ) -> tuple[list[control_pb2.AuditEntry], str | None]:
        """Return one page of the audit log of operator requests, newest first, and the
        next page's token (None on the last page).

        `invocation_id` keeps only the entries about that invocation; they outlive a purge.
        `identity` (exact), `operation` (contained, any case: "kill") and the time range
        [`after`, `before`) are filtered by the server too.
        """
        self._connect()
        request = control_pb2.ListAuditEntriesRequest(
            invocation_id=invocation_id or "",
            page_size=page_size or 0,
            page_token=page_token or "",
            identity=identity or "",
            operation=operation or "",
        )
        for name, when in (("after", after), ("before", before)):
            if when is not None:
                if when.tzinfo is None:  # as for bulk selectors: no guessing the zone
                    raise ValueError(f"{name} needs a timezone-aware datetime")
                getattr(request, name).FromDatetime(when)
        response = await self._rpc(self._control.ListAuditEntries, request)
        return list(response.entries), response.next_page_token or None

    async def list_deployments(self, service: str | None = None) -> list[workers_pb2.Deployment]:
        """Return registered deployments, newest first, optionally only those serving a service."""
        self._connect()
        request = workers_pb2.ListDeploymentsRequest(service=service or "")
        response = await self._rpc(self._workers.ListDeployments, request)
        return list(response.deployments)

    # -- bulk operations (DESIGN.md section 5) --------------------------------------

    async def bulk_operation(
        self,
        operation: str,
        where: bulk_pb2.BulkSelector,
        *,
        reason: str | None = None,
        request_id: str | None = None,
        dry_run: bool = False,
        max_per_second: float = 0,
        deployment: str | None = None,
    ) -> AsyncIterator[bulk_pb2.BulkOperationProgress]:
        """Start a bulk operation and iterate over its progress until the final snapshot.

        `operation` is cancel, kill, pause, resume, purge or restart-as-new; `where` is a
        `selector(...)`. The operation runs on the server: breaking out of the loop (or
        losing the connection) does not stop it; `watch_bulk_operation` re-attaches. The
        same `request_id` re-attaches too instead of starting another. A dry run yields
        one message with the count and a sample, and changes nothing.
        """
        self._connect()
        rpc, _ = BULK_OPERATIONS.get(operation, (operation, None))
        request = bulk_request(
            operation, where, reason=reason, request_id=request_id, dry_run=dry_run,
            max_per_second=max_per_second, deployment=deployment,
        )  # fmt: skip
        async for progress in self._stream(getattr(self._control, rpc), request):
            yield progress

    async def watch_bulk_operation(
        self, bulk_operation_id: str
    ) -> AsyncIterator[bulk_pb2.BulkOperationProgress]:
        """Iterate over a bulk operation's progress, from now to its final snapshot."""
        self._connect()
        request = bulk_pb2.WatchBulkOperationRequest(bulk_operation_id=bulk_operation_id)
        async for progress in self._stream(self._control.WatchBulkOperation, request):
            yield progress

    async def list_bulk_operations(
        self, *, states: Iterable[int] = (), page_size: int = 0, page_token: str | None = None
    ) -> tuple[list[bulk_pb2.BulkOperationProgress], str | None]:
        """One page of bulk operations, newest first, and the next page's token (None on
        the last page)."""
        self._connect()
        request = bulk_pb2.ListBulkOperationsRequest(
            states=list(states), page_size=page_size, page_token=page_token or ""
        )
        response = await self._rpc(self._control.ListBulkOperations, request)
        return list(response.bulk_operations), response.next_page_token or None

    async def stop_bulk_operation(self, bulk_operation_id: str) -> bulk_pb2.BulkOperationProgress:
        """Stop a running bulk operation after its current page; returns its snapshot."""
        self._connect()
        request = bulk_pb2.StopBulkOperationRequest(bulk_operation_id=bulk_operation_id)
        return (await self._rpc(self._control.StopBulkOperation, request)).bulk_operation

    async def _stream(self, method, request: Message) -> AsyncIterator[Any]:
        call = method(request, metadata=self._call_metadata())
        try:
            async for message in call:
                yield message
        except grpc.aio.AioRpcError as err:
            raise error_from_rpc_error(err) from None
        finally:
            call.cancel()  # a consumer that stops early ends the stream, not the operation


def invoke_request(
    service: str,
    handler: str,
    arg: Any = None,
    *,
    key: str | None = None,
    headers: Mapping[str, str] | None = None,
    idempotency_key: str | None = None,
    send: bool = False,
    delay: float | dt.timedelta | None = None,
) -> ingress_pb2.InvokeRequest:
    """Build an InvokeRequest: `arg` is JSON-encoded, `delay` in seconds or a timedelta.

    Raises:
        TypeError: `arg` is not JSON-serializable.
        ValueError: a negative delay.
    """
    request = ingress_pb2.InvokeRequest(
        target=invocation_pb2.Target(service=service, handler=handler, key=key or ""),
        # The contract says empty input means null, so None is sent as "", not "null".
        input="" if arg is None else json.dumps(arg),
        headers=dict(headers or {}),
        idempotency_key=idempotency_key or "",
        mode=ingress_pb2.INVOKE_MODE_SEND if send else ingress_pb2.INVOKE_MODE_CALL,
    )
    if delay is not None:
        request.delay.CopyFrom(_duration(delay))
    return request


def output_of(invocation: invocation_pb2.Invocation) -> Any:
    """The JSON-decoded output of a succeeded invocation (None for empty output).

    Raises:
        InvocationFailed: it is not completed with outcome succeeded.
    """
    if invocation.outcome != invocation_pb2.OUTCOME_SUCCEEDED:
        raise InvocationFailed(invocation)
    return json.loads(invocation.output) if invocation.output else None
