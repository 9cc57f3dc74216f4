"""Bulk operations over gRPC (DESIGN.md section 5): validate the selector, start the
durable job (or re-attach to the one its request_id started), and stream its progress.
The job runs in the server's BulkRunner, not in the stream: it goes on when the client
disconnects."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from datetime import UTC
from typing import Any

import asyncpg
from opentelemetry import trace

from invoctl.v1 import bulk_pb2 as bpb

from ..domain.errors import (
    BulkOperationNotFound,
    DeploymentNotFound,
    DomainError,
    InvalidArgument,
    RequestIdReused,
    TooManyBulkOperations,
    echo,
)
from ..domain.selector import Query, Selector, parse_query
from ..domain.states import OPERATOR_EVENTS, State, acts_on
from ..store import audit, db
from ..store import bulk as store
from ..store.deployments import deployment_exists, service_kind
from ..store.operations import KEEP, LATEST
from . import convert, ids
from .auth import principal
from .context import Runtime
from .operator import record_refusal

# RPC name -> the kind of its jobs.
KINDS = {
    "CancelInvocations": "cancel",
    "KillInvocations": "kill",
    "PauseInvocations": "pause",
    "ResumeInvocations": "resume",
    "PurgeInvocations": "purge",
    "RestartInvocationsAsNew": "restart",
}
# Explicit ID lists longer than this are refused: select by filters instead.
MAX_IDS = 10_000


def selector_of(msg: bpb.BulkSelector) -> tuple[Selector, Query]:
    """The selector's fields, validated, and its parsed query (resolved later)."""
    states = tuple(convert.states(msg.states))
    if len(msg.invocation_ids) > MAX_IDS:
        raise InvalidArgument(
            f"{len(msg.invocation_ids)} invocation IDs; at most {MAX_IDS} in one request",
            limit=str(MAX_IDS),
        )
    selected = tuple(ids.invocation_id(i) for i in msg.invocation_ids)
    selector = Selector(
        service=msg.service or None,
        handler=msg.handler or None,
        key=msg.key or None,
        states=states or None,
        deployment_id=ids.deployment_id(msg.deployment_id) if msg.deployment_id else None,
        created_before=(
            msg.created_before.ToDatetime(tzinfo=UTC) if msg.HasField("created_before") else None
        ),
        created_after=(
            msg.created_after.ToDatetime(tzinfo=UTC) if msg.HasField("created_after") else None
        ),
        invocation_ids=selected or None,
    )
    return selector, parse_query(msg.query)


async def resolve(conn: asyncpg.Connection, selector: Selector, query: Query) -> Selector:
    """The selector narrowed by its query; refuses an empty one."""
    is_object = None
    if query.second is not None and query.service is not None:
        kind = await service_kind(conn, query.service)
        is_object = None if kind is None else kind == "virtual_object"
    return selector.with_query(query, is_object=is_object).check_not_empty()


async def start(
    rt: Runtime, rpc_name: str, request: Any
) -> AsyncIterator[bpb.BulkOperationProgress]:
    """Serve a bulk RPC: a dry run's one message, or the job's progress to its end."""
    kind = KINDS[rpc_name]
    request_id = request.request_id or None
    try:
        if not math.isfinite(request.max_per_second) or request.max_per_second < 0:
            raise InvalidArgument("max_per_second must be a non-negative number")
        selector, query = selector_of(request.selector)
        deployment = ids.deployment_choice(getattr(request, "deployment", "")) or (
            KEEP if kind == "resume" else LATEST
        )
        async with rt.pool.acquire() as conn:
            selector = await resolve(conn, selector, query)
            if deployment.startswith("dp_") and not await deployment_exists(conn, deployment):
                # Refused up front: it would fail every invocation the same way.
                raise DeploymentNotFound(
                    f"deployment {deployment} not found", deployment_id=deployment
                )
            dry_run = await store.bulk_dry_run(conn, selector) if request.dry_run else None
        if dry_run is None:
            job, reattached = await _start_or_attach(
                rt, rpc_name, kind, request, selector, deployment
            )
    except DomainError as refused:
        if not request.dry_run:
            await record_refusal(rt.pool, rpc_name, "", request.reason, request_id, refused)
        raise
    if dry_run is not None:
        counts, sample = dry_run
        by_state = _by_state(kind, counts)
        would_act_on = sum(c.would_act_on for c in by_state)
        matched = sum(c.matched for c in by_state)
        yield bpb.BulkOperationProgress(
            kind=convert.BULK_KIND_TO_PROTO[kind],
            state=bpb.BULK_OPERATION_STATE_DRY_RUN,
            final=True,
            matched=matched,
            matched_by_state=by_state,
            would_act_on=would_act_on,
            would_skip=matched - would_act_on,
            sample_invocation_ids=sample,
            selector=request.selector,
            reason=request.reason,
            identity=principal().identity,
            max_per_second=request.max_per_second,
        )
        return
    if job["owner"] == rt.bulk.owner:
        rt.bulk.run(job)
    async for progress in watch(rt, job["id"]):
        progress.reattached = reattached
        yield progress


def _by_state(kind: str, counts: list[tuple[State, bool, int]]) -> list[bpb.BulkStateCount]:
    """A dry run's matches per state, in the state machine's order, with how many of
    each the operation would act on (from the one state table)."""
    matched: dict[State, int] = {}
    acting: dict[State, int] = {}
    for state, has_started, n in counts:
        matched[state] = matched.get(state, 0) + n
        if acts_on(OPERATOR_EVENTS.get(kind), state, has_started):
            acting[state] = acting.get(state, 0) + n
    return [
        bpb.BulkStateCount(
            state=convert.STATE_TO_PROTO[s], matched=matched[s], would_act_on=acting.get(s, 0)
        )
        for s in State
        if s in matched
    ]


async def _start_or_attach(
    rt: Runtime, rpc_name: str, kind: str, request: Any, selector: Selector, deployment: str
) -> tuple[asyncpg.Record, bool]:
    """The operation this request started, or the one its request_id started before;
    and whether it is the latter (a re-attach)."""
    request_id = request.request_id or None
    identity = principal().identity
    span = trace.get_current_span().get_span_context()
    attached = False

    async def create(conn: asyncpg.Connection) -> asyncpg.Record:
        nonlocal attached
        attached = False  # a retried transaction starts over
        if request_id and (job := await _attach(conn, rpc_name, request_id)) is not None:
            attached = True
            return job
        limit = rt.config.max_bulk_operations
        if await store.bulk_running(conn) >= limit:
            raise TooManyBulkOperations(
                f"{limit} bulk operations are running: wait for one to finish, or stop one",
                limit=str(limit),
            )
        now = rt.now()
        job = await store.bulk_create(
            conn, kind=kind, selector=selector,
            selector_proto=request.selector.SerializeToString(), deployment=deployment,
            reason=request.reason, identity=identity, request_id=request_id,
            max_per_second=request.max_per_second, traceparent=convert.traceparent(span) or None,
            owner=rt.bulk.owner, lease_until=rt.bulk.lease_until(), now=now,
        )  # fmt: skip
        entry = audit.AuditEntry(
            identity=identity, operation=rpc_name, invocation_id="", reason=request.reason,
            request_id=request_id, result="OK", bulk_operation_id=job["id"],
        )  # fmt: skip
        await audit.audit_record(conn, [entry], now=now)
        return job

    try:
        job = await db.transaction(rt.pool, create)
    except asyncpg.UniqueViolationError:
        # The same request_id raced us and won: attach to its operation.
        async with rt.pool.acquire() as conn:
            job = await _attach(conn, rpc_name, request_id or "")
        if job is None:
            raise
        return job, True
    return job, attached


async def _attach(
    conn: asyncpg.Connection, rpc_name: str, request_id: str
) -> asyncpg.Record | None:
    """The operation an earlier request with this request_id started; None if none."""
    prior = (await audit.audit_by_request_ids(conn, [request_id])).get(request_id)
    if prior is None:
        return None
    if prior["operation"] != rpc_name or not prior["bulk_operation_id"]:
        target = prior["bulk_operation_id"] or prior["invocation_id"]
        raise RequestIdReused(
            f"request_id {echo(request_id)} was used for {prior['operation']} of {target}",
            request_id=request_id,
        )
    return await store.bulk_get(conn, prior["bulk_operation_id"])


def _not_found(bulk_id: str) -> BulkOperationNotFound:
    return BulkOperationNotFound(f"bulk operation {bulk_id} not found", bulk_operation_id=bulk_id)


async def stop(rt: Runtime, text: str) -> bpb.StopBulkOperationResponse:
    """Stop a running operation after its current page; audited like any request."""
    identity = principal().identity
    try:
        bulk_id = ids.bulk_operation_id(text)

        async def stop_and_record(conn: asyncpg.Connection) -> asyncpg.Record:
            row = await store.bulk_stop(conn, bulk_id, now=rt.now())
            if row is None:
                raise _not_found(bulk_id)
            entry = audit.AuditEntry(
                identity=identity, operation="StopBulkOperation", invocation_id="",
                reason="", request_id=None, result="OK", bulk_operation_id=bulk_id,
            )  # fmt: skip
            await audit.audit_record(conn, [entry], now=rt.now())
            return row

        row = await db.transaction(rt.pool, stop_and_record)
    except DomainError as refused:
        await record_refusal(rt.pool, "StopBulkOperation", "", "", None, refused)
        raise
    return bpb.StopBulkOperationResponse(bulk_operation=convert.bulk_progress(row))


async def watch(rt: Runtime, bulk_id: str) -> AsyncIterator[bpb.BulkOperationProgress]:
    """Snapshots of the operation after every page and at least 4 times a second, until
    the final one."""
    async for _ in rt.bulk.watch(bulk_id):
        async with rt.pool.acquire() as conn:
            row = await store.bulk_get(conn, bulk_id)
        if row is None:
            raise _not_found(bulk_id)
        progress = convert.bulk_progress(row)
        yield progress
        if progress.final:
            return
