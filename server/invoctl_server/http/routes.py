"""invoctl's own HTTP routes: reads, invoke and attach, audit, deployments, bulk jobs,
health and the OpenAPI document. Each runs the RPC it names (route.Services), with the
request message built from the query or the JSON body and the response message as the
body (proto3 JSON)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from google.protobuf import timestamp_pb2
from starlette.responses import JSONResponse, Response

from invoctl.v1 import bulk_pb2 as bpb
from invoctl.v1 import control_pb2 as cpb
from invoctl.v1 import ingress_pb2 as ipb
from invoctl.v1 import workers_pb2 as wpb

from ..api.convert import BULK_STATE_TO_PROTO, OUTCOME_TO_PROTO, STATE_TO_PROTO
from ..domain.errors import InvalidArgument, NotCompletedInTime, echo
from ..domain.states import Outcome, State
from . import bodies, restate, sse
from .route import CONTROL, INGRESS, WORKERS, Call, Param, Route

PAGE = (
    Param("page_size", "integer", "default 100, at most 1000"),
    Param("page_token", description="nextPageToken of the previous page"),
)
# Longest an attach may wait, and how long it waits by default.
MAX_WAIT = 3600.0
DEFAULT_WAIT = 30.0


def _enum(text: str, names: dict[str, int], what: str) -> int:
    """A state or outcome as the CLI spells it (`backing-off`) or as its proto enum."""
    value = names.get(text) or names.get(text.lower())
    if value is None:
        raise InvalidArgument(
            f"{what} {echo(text)} is not one of {', '.join(names)}", **{what: text}
        )
    return value


_STATES = {str(s): STATE_TO_PROTO[s] for s in State} | {
    f"INVOCATION_STATE_{s.name}": STATE_TO_PROTO[s] for s in State
}
_OUTCOMES = {str(o): OUTCOME_TO_PROTO[o] for o in Outcome} | {
    f"OUTCOME_{o.name}": OUTCOME_TO_PROTO[o] for o in Outcome
}
_BULK_STATES = {k: v for k, v in BULK_STATE_TO_PROTO.items()}


def _int(call: Call, name: str) -> int:
    text = call.query(name)
    if text is None:
        return 0
    if not text.isdigit() or int(text) > 2**31 - 1:
        raise InvalidArgument(f"{name} must be a non-negative integer, not {echo(text)}")
    return int(text)


def _time(call: Call, name: str) -> timestamp_pb2.Timestamp | None:
    text = call.query(name)
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidArgument(f"{name} must be an ISO 8601 time, not {echo(text)}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # as the CLI reads it
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(when)
    return out


def _json(message, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(bodies.to_dict(message), status_code=status, headers=headers)


# --- invocations ----------------------------------------------------------------------


async def list_invocations(call: Call) -> Response:
    request = cpb.ListInvocationsRequest(
        service=call.query("service") or "",
        handler=call.query("handler") or "",
        key=call.query("key") or "",
        states=[_enum(s, _STATES, "state") for s in call.query_list("state")],
        deployment_id=call.query("deployment") or "",
        idempotency_key=call.query("idempotency_key") or "",
        page_size=_int(call, "page_size"),
        page_token=call.query("page_token") or "",
    )
    if (outcome := call.query("outcome")) is not None:
        request.outcome = _enum(outcome, _OUTCOMES, "outcome")
    for name in ("created_before", "created_after"):
        if (when := _time(call, name)) is not None:
            getattr(request, name).CopyFrom(when)
    return _json(await call.invoke(CONTROL + "ListInvocations", request))


async def get_invocation(call: Call) -> Response:
    request = cpb.GetInvocationRequest(invocation_id=call.path("invocation_id"))
    return _json(await call.invoke(CONTROL + "GetInvocation", request))


async def get_journal(call: Call) -> Response:
    request = cpb.GetJournalRequest(invocation_id=call.path("invocation_id"))
    return _json(await call.invoke(CONTROL + "GetJournal", request))


async def invoke(call: Call) -> Response:
    request = bodies.parse(call.json(), ipb.InvokeRequest())
    response = await call.invoke(INGRESS + "Invoke", request)
    if request.mode == ipb.INVOKE_MODE_SEND:
        location = f"/invocations/{response.invocation_id}"
        return _json(response, 202, {"Location": location})
    return _json(response)


async def get_output(call: Call) -> Response:
    invocation_id = call.path("invocation_id")
    text = call.query("timeout")
    try:
        timeout = DEFAULT_WAIT if text is None else float(text.removesuffix("s"))
    except ValueError:
        timeout = -1.0
    if not 0 < timeout <= MAX_WAIT:  # also NaN
        raise InvalidArgument(f"timeout must be seconds, more than 0 and at most {MAX_WAIT:g}")
    request = ipb.AttachRequest(invocation_id=invocation_id)
    try:
        async with asyncio.timeout(timeout):
            response = await call.invoke(INGRESS + "Attach", request)
    except TimeoutError:
        raise NotCompletedInTime(
            f"invocation {invocation_id} did not complete within {timeout:g} s",
            invocation_id=invocation_id,
            timeout=f"{timeout:g}",
        ) from None
    return _json(response)


# --- audit, deployments -----------------------------------------------------------------


async def list_audit_entries(call: Call) -> Response:
    request = cpb.ListAuditEntriesRequest(
        invocation_id=call.query("invocation_id") or "",
        page_size=_int(call, "page_size"),
        page_token=call.query("page_token") or "",
        identity=call.query("identity") or "",
        operation=call.query("operation") or "",
    )
    for name in ("after", "before"):
        if (when := _time(call, name)) is not None:
            getattr(request, name).CopyFrom(when)
    return _json(await call.invoke(CONTROL + "ListAuditEntries", request))


async def list_deployments(call: Call) -> Response:
    request = wpb.ListDeploymentsRequest(service=call.query("service") or "")
    return _json(await call.invoke(WORKERS + "ListDeployments", request))


# --- bulk operations --------------------------------------------------------------------

# The body's `operation`, as the CLI spells it -> the RPC and its request message.
BULK: dict[str, tuple[str, type]] = {
    "cancel": ("CancelInvocations", bpb.CancelInvocationsRequest),
    "kill": ("KillInvocations", bpb.KillInvocationsRequest),
    "pause": ("PauseInvocations", bpb.PauseInvocationsRequest),
    "resume": ("ResumeInvocations", bpb.ResumeInvocationsRequest),
    "purge": ("PurgeInvocations", bpb.PurgeInvocationsRequest),
    "restart-as-new": ("RestartInvocationsAsNew", bpb.RestartInvocationsAsNewRequest),
}


async def start_bulk_operation(call: Call) -> Response:
    """Start the job (or re-attach to the one its request_id started): 202 with its
    first snapshot and Location; a dry run is 200 with its count and sample."""
    data = call.json()
    operation = data.pop("operation", None)
    if operation not in BULK:
        raise InvalidArgument(
            f"operation must be one of {', '.join(BULK)}, not {echo(operation)}",
            operation=str(operation),
        )
    rpc, message_type = BULK[operation]
    request = bodies.parse(data, message_type())
    stream = call.stream(CONTROL + rpc, request)
    try:
        first = await anext(stream)
    finally:
        await stream.aclose()  # the job runs on in the server, not in this request
    if first.state == bpb.BULK_OPERATION_STATE_DRY_RUN:
        return _json(first)
    return _json(first, 202, {"Location": f"/bulk-operations/{first.bulk_operation_id}"})


async def list_bulk_operations(call: Call) -> Response:
    request = bpb.ListBulkOperationsRequest(
        states=[_enum(s, _BULK_STATES, "state") for s in call.query_list("state")],
        page_size=_int(call, "page_size"),
        page_token=call.query("page_token") or "",
    )
    return _json(await call.invoke(CONTROL + "ListBulkOperations", request))


async def get_bulk_operation(call: Call) -> Response:
    """The operation's snapshot now: the first message of WatchBulkOperation."""
    stream = call.stream(CONTROL + "WatchBulkOperation", _watch_request(call))
    try:
        return _json(await anext(stream))
    finally:
        await stream.aclose()


async def stop_bulk_operation(call: Call) -> Response:
    request = bpb.StopBulkOperationRequest(bulk_operation_id=call.path("bulk_operation_id"))
    return _json(await call.invoke(CONTROL + "StopBulkOperation", request))


def _watch_request(call: Call) -> bpb.WatchBulkOperationRequest:
    return bpb.WatchBulkOperationRequest(bulk_operation_id=call.path("bulk_operation_id"))


async def watch_bulk_operation(call: Call) -> Response:
    stream = call.stream(CONTROL + "WatchBulkOperation", _watch_request(call))
    return await sse.progress_stream(call, stream)


# --- the server -------------------------------------------------------------------------


async def health(call: Call) -> Response:
    if call.api.stopping.is_set():
        return JSONResponse({"status": "NOT_SERVING"}, status_code=503)
    return JSONResponse({"status": "SERVING"})


async def openapi(call: Call) -> Response:
    return JSONResponse(call.api.openapi)


ROUTES: list[Route] = [
    Route("GET", "/invocations", list_invocations,
          summary="List invocations, newest first, in pages (ListInvocations)",
          rpc=CONTROL + "ListInvocations",
          query=(Param("service"), Param("handler"), Param("key", description="object key"),
                 Param("state", description="pending, scheduled, ready, running, backing-off, "
                       "suspended, paused or completed; repeatable or comma-separated",
                       repeated=True),
                 Param("outcome", description="succeeded, failed, cancelled or killed"),
                 Param("deployment", description="only invocations pinned to this dp_..."),
                 Param("created_before", description="ISO 8601; UTC without a zone"),
                 Param("created_after", description="ISO 8601; UTC without a zone"),
                 Param("idempotency_key"), *PAGE),
          responses={200: cpb.ListInvocationsResponse}),
    Route("POST", "/invocations", invoke,
          summary="Invoke a handler: a call waits for the result (200), a send returns "
          "once accepted (202, Location) (Invoke)",
          rpc=INGRESS + "Invoke", body=ipb.InvokeRequest,
          responses={200: ipb.InvokeResponse, 202: ipb.InvokeResponse}),
    Route("GET", "/invocations/{invocation_id}", get_invocation,
          summary="One invocation (GetInvocation)", rpc=CONTROL + "GetInvocation",
          responses={200: cpb.GetInvocationResponse}),
    Route("GET", "/invocations/{invocation_id}/journal", get_journal,
          summary="An invocation's journal and transition history (GetJournal)",
          rpc=CONTROL + "GetJournal", responses={200: cpb.GetJournalResponse}),
    Route("GET", "/invocations/{invocation_id}/output", get_output,
          summary="Wait for an invocation to complete and return it with its result "
          "(Attach); 504 NOT_COMPLETED_IN_TIME after the timeout",
          rpc=INGRESS + "Attach",
          query=(Param("timeout", "number", f"seconds (default {DEFAULT_WAIT:g}, at most "
                       f"{MAX_WAIT:g})"),),
          responses={200: ipb.AttachResponse}),
    Route("GET", "/audit", list_audit_entries,
          summary="The audit log of operator requests, newest first (ListAuditEntries)",
          rpc=CONTROL + "ListAuditEntries",
          query=(Param("invocation_id"), Param("identity", "string", "exact"),
                 Param("operation", "string", "contained in the operation, any case"),
                 Param("after", "string", "ISO 8601, at or after (UTC without a zone)"),
                 Param("before", "string", "ISO 8601, before"), *PAGE),
          responses={200: cpb.ListAuditEntriesResponse}),
    Route("GET", "/deployments", list_deployments,
          summary="Deployments, newest first, with their workers (ListDeployments)",
          rpc=WORKERS + "ListDeployments", query=(Param("service"),),
          responses={200: wpb.ListDeploymentsResponse}),
    Route("POST", "/bulk-operations", start_bulk_operation,
          summary="Start a bulk operation (CancelInvocations, KillInvocations, ...): 202 "
          "with its first snapshot and Location; a dry run answers 200. The same "
          "request_id re-attaches to the job it started.",
          body="BulkOperationRequest",
          responses={200: bpb.BulkOperationProgress, 202: bpb.BulkOperationProgress}),
    Route("GET", "/bulk-operations", list_bulk_operations,
          summary="Bulk operations, newest first (ListBulkOperations)",
          rpc=CONTROL + "ListBulkOperations",
          query=(Param("state", description="running, completed or stopped; repeatable",
                       repeated=True), *PAGE),
          responses={200: bpb.ListBulkOperationsResponse}),
    Route("GET", "/bulk-operations/{bulk_operation_id}", get_bulk_operation,
          summary="A bulk operation's snapshot now (the first message of "
          "WatchBulkOperation)", rpc=CONTROL + "WatchBulkOperation",
          responses={200: bpb.BulkOperationProgress}),
    Route("POST", "/bulk-operations/{bulk_operation_id}/stop", stop_bulk_operation,
          summary="Stop a bulk operation after its current page (StopBulkOperation)",
          rpc=CONTROL + "StopBulkOperation", responses={200: bpb.StopBulkOperationResponse}),
    Route("GET", "/bulk-operations/{bulk_operation_id}/events", watch_bulk_operation,
          summary="Server-sent events: a progress snapshot (event `progress`) after every "
          "page and at least every 0.1 s, ending with the final one; resumable with "
          "Last-Event-ID (204 once the client has the final one) (WatchBulkOperation)",
          rpc=CONTROL + "WatchBulkOperation", streaming=True,
          responses={200: "EventStream", 204: None}),
    Route("GET", "/health", health, summary="200 while the server serves, 503 while it stops",
          public=True, responses={200: "Health", 503: "Health"}),
    Route("GET", "/openapi", openapi, summary="This document (OpenAPI 3.1)", public=True,
          responses={200: "OpenApi"}),
    *restate.ROUTES,
]  # fmt: skip
