"""Restate's admin routes for invocations, as Restate 1.7.12 serves them
(../shared/RESTATE-ADMIN-API.md): the same paths, parameters and status codes, so the
curl lines, scripts and UI calls written for Restate work here. Where we add, we add
fields (the invocation after the action, `reason`, `request_id`), never change them.

Each action runs the RPC of the gRPC API (through operator.operate: audited, with
request_id, traced); the statuses are Restate's:

    cancel          202 when a started invocation is signalled, 200 when it completed at once
    kill            200 (it is completed/killed when the response arrives)
    pause           202 pausing, 200 already paused
    resume, purge, purge-journal   200
    restart-as-new  200 {"new_invocation_id": "inv_..."}
"""

from __future__ import annotations

import asyncio
from typing import Any

from google.protobuf.message import Message
from starlette.responses import JSONResponse, Response

from invoctl.v1 import control_pb2 as cpb
from invoctl.v1 import invocation_pb2 as pb

from ..domain.errors import DomainError, InvalidArgument, MalformedId, echo
from ..domain.ids import is_invocation_id
from . import bodies
from .errors import Refused
from .route import CONTROL, Call, Param, Route

# Restate's action -> the RPC and its request message.
ACTIONS: dict[str, tuple[str, type[Message]]] = {
    "cancel": ("CancelInvocation", cpb.CancelInvocationRequest),
    "kill": ("KillInvocation", cpb.KillInvocationRequest),
    "pause": ("PauseInvocation", cpb.PauseInvocationRequest),
    "resume": ("ResumeInvocation", cpb.ResumeInvocationRequest),
    "purge": ("PurgeInvocation", cpb.PurgeInvocationRequest),
    "purge-journal": ("PurgeJournal", cpb.PurgeJournalRequest),
    "restart-as-new": ("RestartInvocationAsNew", cpb.RestartInvocationAsNewRequest),
}
# At most this many IDs in one batch request, as Restate.
BATCH_MAX = 1000
_U32 = 2**31 - 1  # from_entry is an int32

REASON = Param("reason", description="why, for the audit log")
REQUEST_ID = Param(
    "request_id", description="makes a retry of the same request a no-op that returns the "
    "first result",
)  # fmt: skip
DEPLOYMENT = Param(
    "deployment",
    description="`latest`, `keep` (either case) or a `dp_...` deployment serving the handler",
)
FROM = Param(
    "from", "integer", "keep the journal entries before this index, replayed before the new "
    "invocation runs live (restart from prefix)",
)  # fmt: skip


def _deployment(text: str) -> str:
    """Restate's `Latest` and `Keep` are spelled in any case; IDs are checked later."""
    return text.lower() if text.lower() in ("latest", "keep") else text


def _from_entry(text: str) -> int:
    if not text.isdigit() or int(text) > _U32:
        raise InvalidArgument(f"from must be a journal index (0 to {_U32}), not {echo(text)}")
    return int(text)


def action_request(call: Call, action: str, invocation_id: str) -> Message:
    """The action's request message: a JSON body of it (optional), then the query."""
    _, message_type = ACTIONS[action]
    request = bodies.parse(call.json(), message_type())
    if request.invocation_id and request.invocation_id != invocation_id:
        raise InvalidArgument("the body's invocationId is not the one in the path")
    request.invocation_id = invocation_id
    if (reason := call.query("reason")) is not None:
        request.reason = reason
    if (request_id := call.query("request_id")) is not None:
        request.request_id = request_id
    if (deployment := call.query("deployment")) is not None:
        request.deployment = _deployment(deployment)
    if (prefix := call.query("from")) is not None:
        request.from_entry = _from_entry(prefix)
    return request


async def run_action(call: Call, action: str, invocation_id: str) -> tuple[int, dict[str, Any]]:
    """Act, and return Restate's status with the response body."""
    rpc, _ = ACTIONS[action]
    request = action_request(call, action, invocation_id)
    already_paused = False
    if action == "pause" and is_invocation_id(invocation_id):
        # Restate tells a pause that found it paused (200) from one that pauses (202).
        try:
            got = await call.invoke(
                CONTROL + "GetInvocation", cpb.GetInvocationRequest(invocation_id=invocation_id)
            )
            already_paused = got.invocation.state == pb.INVOCATION_STATE_PAUSED
        except DomainError:
            pass  # the pause itself refuses it, and records the refusal
    response = await call.invoke(CONTROL + rpc, request)
    body = bodies.to_dict(response)
    inv = response.invocation
    if action == "cancel":
        return (200 if inv.state == pb.INVOCATION_STATE_COMPLETED else 202), body
    if action == "pause":
        return (200 if already_paused else 202), body
    if action == "restart-as-new":
        return 200, {"new_invocation_id": inv.id, **body}
    return 200, body


def _action_route(action: str) -> Route:
    rpc, message_type = ACTIONS[action]
    query = [REASON, REQUEST_ID]
    if action in ("resume", "restart-as-new"):
        query.append(DEPLOYMENT)
    if action == "restart-as-new":
        query.append(FROM)

    async def handler(call: Call) -> Response:
        status, body = await run_action(call, action, call.path("invocation_id"))
        return JSONResponse(body, status_code=status)

    handler.__name__ = f"{action.replace('-', '_')}_invocation"
    success = {
        "cancel": {200: None, 202: None},
        "pause": {200: None, 202: None},
        "restart-as-new": {200: "RestartedAsNew"},
    }.get(action, {200: None})
    return Route(
        "PATCH", f"/invocations/{{invocation_id}}/{action}", handler,
        summary=f"{action.capitalize()} an invocation (Restate's route; the gRPC {rpc})",
        rpc=CONTROL + rpc, query=tuple(query), body=message_type,
        responses={s: (schema or f"invoctl.v1.{rpc}Response") for s, schema in success.items()},
        tag="restate",
        too_early=action in ("resume", "purge", "purge-journal", "restart-as-new"),
    )  # fmt: skip


_DELETE_MODES = {"cancel": "cancel", "kill": "kill", "purge": "purge"}


async def delete_invocation(call: Call) -> Response:
    """Restate's deprecated DELETE: 202 on success, as Restate; a real 404 for an
    unknown ID (Restate answers 202 even then)."""
    mode = (call.query("mode") or "cancel").lower()
    if mode not in _DELETE_MODES:
        raise InvalidArgument(f"mode must be cancel, kill or purge, not {echo(mode)}", mode=mode)
    _, body = await run_action(call, _DELETE_MODES[mode], call.path("invocation_id"))
    return JSONResponse(body, status_code=202)


def _batch_route(action: str) -> Route:
    rpc, _ = ACTIONS[action]

    async def handler(call: Call) -> Response:
        call.authorize(CONTROL + rpc)
        data = call.json()
        ids = data.get("invocation_ids")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise InvalidArgument("invocation_ids must be a list of invocation IDs")
        if len(ids) > BATCH_MAX:
            raise InvalidArgument(
                f"{len(ids)} invocation IDs; at most {BATCH_MAX} in one request",
                limit=str(BATCH_MAX),
            )
        for i in ids:
            if not is_invocation_id(i):
                # Restate refuses the whole body with 422 (it does not deserialize).
                raise Refused(422, MalformedId(f"{echo(i)} is not an invocation ID",
                                               invocation_id=i))  # fmt: skip
        extra = set(data) - {"invocation_ids", "deployment", "reason"}
        if extra or ("deployment" in data and action not in ("resume", "restart-as-new")):
            raise InvalidArgument(f"unknown field {echo(sorted(extra or {'deployment'})[0])}")
        deployment = data.get("deployment")
        reason = data.get("reason", "")
        if not isinstance(deployment, str | None) or not isinstance(reason, str):
            raise InvalidArgument("deployment and reason must be strings")

        async def one(invocation_id: str) -> Message:
            _, message_type = ACTIONS[action]
            request = message_type(invocation_id=invocation_id, reason=reason)
            if deployment is not None:
                request.deployment = _deployment(deployment)
            return await call.invoke(CONTROL + rpc, request)

        # Concurrent: the operator's group commit writes them in a few transactions.
        results = await asyncio.gather(*(one(i) for i in ids), return_exceptions=True)
        succeeded: list[Any] = []
        failed: list[dict[str, str]] = []
        for invocation_id, result in zip(ids, results, strict=True):
            if isinstance(result, DomainError):
                failed.append(
                    {"invocation_id": invocation_id, "error": result.message,
                     "reason": result.reason}
                )  # fmt: skip
            elif isinstance(result, BaseException):
                raise result
            elif action == "restart-as-new":
                succeeded.append(
                    {"old_invocation_id": invocation_id, "new_invocation_id": result.invocation.id}
                )
            else:
                succeeded.append(invocation_id)
        return JSONResponse({"succeeded": succeeded, "failed": failed})

    handler.__name__ = f"batch_{action.replace('-', '_')}_invocations"
    return Route(
        "POST", f"/internal/invocations_batch_operations/{action}", handler,
        summary=f"{action.capitalize()} up to {BATCH_MAX} invocations by ID (the route "
        f"Restate's UI uses; each runs the gRPC {rpc})",
        body="BatchRequest",
        responses={200: "BatchRestartResult" if action == "restart-as-new" else "BatchResult"},
        tag="restate",
    )  # fmt: skip


ROUTES: list[Route] = [
    *(_action_route(a) for a in ACTIONS),
    Route(
        "DELETE",
        "/invocations/{invocation_id}",
        delete_invocation,
        summary="Cancel, kill or purge an invocation (Restate's deprecated form; 202)",
        query=(
            Param("mode", description="cancel (default), kill or purge, in any case"),
            REASON,
            REQUEST_ID,
        ),
        responses={202: None},
        tag="restate",
    ),
    *(_batch_route(a) for a in ACTIONS),
]
