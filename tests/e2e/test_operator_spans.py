"""Every transition an operator request causes, on its target and on each invocation of
its call tree, emits a span in the request's trace (DESIGN.md section 6)."""

from __future__ import annotations

import asyncio

from invoctl.sdk import Worker
from invoctl.v1 import invocation_pb2 as pb
from tests.e2e._helpers import wait_state
from tests.e2e._operator import OPERATOR, Lab, start_call_tree, transitions
from tests.e2e.test_operator_kill import tree_services

SERVER_SCOPE = "invoctl.server"


def _rpc_span(spans, rpc: str):
    [span] = [
        s for s in spans.get_finished_spans() if s.name == f"/invoctl.v1.InvocationControl/{rpc}"
    ]
    return span


def _transition_spans(spans, inv_id: str, event: str | None = None) -> list:
    return [
        s
        for s in spans.get_finished_spans()
        if s.attributes.get("restate.invocation.id") == inv_id
        and s.instrumentation_scope.name == SERVER_SCOPE
        and (event is None or s.attributes.get("invoctl.event") == event)
    ]


async def _assert_traced(client, spans, rpc: str, inv_id: str, count: int = 1) -> None:
    """The operator's transitions of `inv_id` are spans in the trace of the `rpc` span,
    and the history rows carry their trace and span IDs."""
    rpc_span = _rpc_span(spans, rpc)
    trace_id = format(rpc_span.context.trace_id, "032x")
    ops = [t for t in await transitions(client, inv_id) if t.actor == OPERATOR]
    assert len(ops) == count, ops
    emitted = {format(s.context.span_id, "016x"): s for s in _transition_spans(spans, inv_id)}
    for t in ops:
        assert t.trace_id == trace_id, (rpc, inv_id, t.event)
        span = emitted[t.span_id]
        assert format(span.context.trace_id, "032x") == trace_id
        assert span.attributes["invoctl.actor"] == OPERATOR
        assert span.attributes["invoctl.event"] == t.event


async def test_kill_of_a_call_tree_is_one_trace(server, client, op, spans):
    release = asyncio.Event()
    try:
        async with Worker(tree_services(release, {}), server=server.address):
            root, middle, leaf = await start_call_tree(client)
            spans.clear()
            await op.kill(root)
            killed_spans = {
                inv: _transition_spans(spans, inv, "killed") for inv in (root, middle, leaf)
            }
    finally:
        release.set()
    rpc_span = _rpc_span(spans, "KillInvocation")
    for inv_id, emitted in killed_spans.items():
        assert len(emitted) == 1, inv_id
        assert emitted[0].context.trace_id == rpc_span.context.trace_id, inv_id
        await _assert_traced(client, spans, "KillInvocation", inv_id)


async def test_cancel_of_a_call_tree_is_one_trace(server, client, op, spans):
    release = asyncio.Event()
    try:
        async with Worker(tree_services(release, {}), server=server.address):
            root, middle, leaf = await start_call_tree(client)
            await wait_state(client, middle, pb.INVOCATION_STATE_SUSPENDED)
            spans.clear()
            await op.cancel(root)
            cancelled = {
                inv: _transition_spans(spans, inv, "cancelled") for inv in (root, middle, leaf)
            }
            rpc_span = _rpc_span(spans, "CancelInvocation")
            for inv_id, emitted in cancelled.items():
                assert len(emitted) == 1, inv_id
                assert emitted[0].context.trace_id == rpc_span.context.trace_id, inv_id
                await _assert_traced(client, spans, "CancelInvocation", inv_id)
    finally:
        release.set()


async def test_pause_and_resume_transitions_are_in_their_rpcs_traces(server, client, op, spans):
    async with Lab(server.address, client) as lab:
        inv_id = await lab.make(pb.INVOCATION_STATE_BACKING_OFF)
        spans.clear()
        await op.pause(inv_id)
        await _assert_traced(client, spans, "PauseInvocation", inv_id)
        spans.clear()
        await op.resume(inv_id)
        rpc_span = _rpc_span(spans, "ResumeInvocation")
        [resumed] = [t for t in await transitions(client, inv_id) if t.actor == OPERATOR][1:]
        assert resumed.trace_id == format(rpc_span.context.trace_id, "032x")
        assert resumed.from_state == pb.INVOCATION_STATE_PAUSED


async def test_restart_accepts_the_new_invocation_in_the_rpcs_trace(server, client, op, spans):
    async with Lab(server.address, client) as lab:
        old = await lab.make(pb.INVOCATION_STATE_COMPLETED)
        spans.clear()
        new = await op.restart(old)
        await client.attach(new.id)
    rpc_span = _rpc_span(spans, "RestartInvocationAsNew")
    [accepted] = _transition_spans(spans, new.id, "accepted")
    assert accepted.context.trace_id == rpc_span.context.trace_id
    assert not _transition_spans(spans, old)  # the old one had no transition
