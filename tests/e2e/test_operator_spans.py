"""Every transition an operator request causes, on its target and on each invocation of
its call tree, emits a span in the request's trace (DESIGN.md section 6)."""

from __future__ import annotations

import asyncio

from opentelemetry import trace

from invoctl.client import selector
from invoctl.sdk import Context, ObjectContext, Service, TerminalError, VirtualObject, Worker
from invoctl.v1 import invocation_pb2 as pb
from tests.e2e._helpers import wait_state
from tests.e2e._operator import OPERATOR, Lab, callee_of, start_call_tree, transitions
from tests.e2e._trace import ids, linked, transition_spans
from tests.e2e.test_operator_kill import tree_services
from tests.support import wait_for


def _rpc_span(spans, rpc: str):
    [span] = [
        s for s in spans.get_finished_spans() if s.name == f"/invoctl.v1.InvocationControl/{rpc}"
    ]
    return span


async def _assert_traced(client, spans, rpc: str, inv_id: str, count: int = 1) -> None:
    """The operator's transitions of `inv_id` are spans in the trace of the `rpc` span,
    and the history rows carry their trace and span IDs."""
    rpc_span = _rpc_span(spans, rpc)
    trace_id = format(rpc_span.context.trace_id, "032x")
    ops = [t for t in await transitions(client, inv_id) if t.actor == OPERATOR]
    assert len(ops) == count, ops
    emitted = {format(s.context.span_id, "016x"): s for s in transition_spans(spans, inv_id)}
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
                inv: transition_spans(spans, inv, "killed") for inv in (root, middle, leaf)
            }
            release.set()  # the blocked attempt ends now, not at the worker's 5 s grace
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
                inv: transition_spans(spans, inv, "cancelled") for inv in (root, middle, leaf)
            }
            rpc_span = _rpc_span(spans, "CancelInvocation")
            for inv_id, emitted in cancelled.items():
                assert len(emitted) == 1, inv_id
                assert emitted[0].context.trace_id == rpc_span.context.trace_id, inv_id
                await _assert_traced(client, spans, "CancelInvocation", inv_id)
            release.set()  # the blocked attempt ends now, not at the worker's 5 s grace
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

        # Its completion's span ends just after its commit, which a state read can see
        # first (the server runs in this process): clear only once it is in.
        async def completed() -> list:
            return transition_spans(spans, old, "completed")

        await wait_for(completed, what=f"the completed span of {old}")
        spans.clear()
        new = await op.restart(old)
        await client.attach(new.id)
    rpc_span = _rpc_span(spans, "RestartInvocationAsNew")
    [accepted] = transition_spans(spans, new.id, "accepted")
    assert accepted.context.trace_id == rpc_span.context.trace_id
    assert not transition_spans(spans, old)  # the old one had no transition


def key_services(release: asyncio.Event) -> list:
    """Waiter/wait calls Holder/<key>/hold, which holds its key until `release`."""
    waiter = Service("Waiter")

    @waiter.handler()
    async def wait(ctx: Context, key: str) -> str:
        try:
            return await ctx.call("Holder", "hold", key=key)
        except TerminalError as err:
            return err.code

    holder = VirtualObject("Holder")

    @holder.handler()
    async def hold(ctx: ObjectContext) -> str:
        await ctx.run("hold", release.wait)
        return "released"

    return [waiter, holder]


async def test_what_a_kill_causes_is_in_the_callers_trace_linked_to_each_invocation(
    server, client, spans
):
    release = asyncio.Event()
    tracer = trace.get_tracer("tests")
    try:
        async with Worker(key_services(release), server=server.address):
            waiter = await client.send("Waiter", "wait", "k")
            held = await callee_of(client, waiter)
            await wait_state(client, held, pb.INVOCATION_STATE_RUNNING)
            await wait_state(client, waiter, pb.INVOCATION_STATE_SUSPENDED)
            queued = await client.send("Holder", "hold", key="k")
            await wait_state(client, queued, pb.INVOCATION_STATE_PENDING)

            with tracer.start_as_current_span("kill the holder") as asked:
                await client.kill_invocation(held)
            # The next on the key gets it and runs; the waiter wakes and ends.
            await wait_state(client, queued, pb.INVOCATION_STATE_RUNNING)
            await client.attach(waiter)
            release.set()  # the blocked attempt ends now, not at the worker's 5 s grace
    finally:
        release.set()

    rpc_span = _rpc_span(spans, "KillInvocation")
    assert rpc_span.context.trace_id == asked.get_span_context().trace_id
    caused = {
        held: transition_spans(spans, held, "killed"),
        queued: transition_spans(spans, queued, "key_acquired"),
        waiter: transition_spans(spans, waiter, "woken")[-1:],
    }
    for inv_id, [span] in caused.items():
        [accepted] = transition_spans(spans, inv_id, "accepted")
        # In the request's trace, as a child of its RPC, named for the operator...
        assert span.parent.span_id == rpc_span.context.span_id, inv_id
        assert span.context.trace_id == rpc_span.context.trace_id, inv_id
        assert span.attributes["invoctl.actor"] == OPERATOR
        # ...linked to the invocation's own trace...
        assert linked(span) == [ids(accepted.context)], inv_id
        assert accepted.context.trace_id != rpc_span.context.trace_id

    # ...whose next span, made without any request, links back to what the kill did.
    for inv_id in (queued, waiter):
        [accepted] = transition_spans(spans, inv_id, "accepted")
        [after] = transition_spans(spans, inv_id, "claimed")[-1:]
        assert after.parent.span_id == accepted.context.span_id
        assert linked(after) == [ids(caused[inv_id][0].context)], inv_id


async def test_the_claim_after_a_resume_links_to_the_operators_spans(server, client, op, spans):
    async with Lab(server.address, client) as lab:
        inv_id = await lab.make(pb.INVOCATION_STATE_BACKING_OFF)
        await op.pause(inv_id)
        await op.resume(inv_id)
        await wait_for(lambda: _claims(client, inv_id, 2), what="the attempt after the resume")
    [accepted] = transition_spans(spans, inv_id, "accepted")
    [paused] = transition_spans(spans, inv_id, "paused")
    [resumed] = transition_spans(spans, inv_id, "resumed")
    first, second = transition_spans(spans, inv_id, "claimed")
    for span in (paused, resumed):
        assert span.context.trace_id != accepted.context.trace_id
        assert linked(span) == [ids(accepted.context)]
    assert not first.links
    # Both operator actions since its last own transition, oldest first.
    assert linked(second) == [ids(paused.context), ids(resumed.context)]
    assert second.context.trace_id == accepted.context.trace_id
    [failed] = transition_spans(spans, inv_id, "attempt_failed")[-1:]
    assert not failed.links  # linked once


async def _claims(client, inv_id: str, count: int) -> bool:
    events = [t.event for t in await transitions(client, inv_id)]
    return events.count("claimed") >= count and events[-1] == "attempt_failed"


async def test_a_bulk_pages_transitions_are_in_its_trace_linked_to_each_invocation(
    server, client, spans
):
    tracer = trace.get_tracer("tests")
    async with Lab(server.address, client) as lab:
        made = [await lab.make(pb.INVOCATION_STATE_READY) for _ in range(3)]
        with tracer.start_as_current_span("ask for a bulk kill") as asked:
            stream = client.bulk_operation("kill", selector(invocation_ids=made))
            progress = [p async for p in stream]
    assert progress[-1].succeeded == 3

    # A page's spans end once its transaction committed, and the final progress message
    # may reach the stream before that: wait for them rather than assume they ended.
    async def finished_pages():
        done = spans.get_finished_spans()
        killed = [i for i in made if transition_spans(spans, i, "killed")]
        return len(killed) == len(made) and [s for s in done if s.name == "bulk kill page"]

    pages = await wait_for(finished_pages, what="the bulk page's spans to end")
    page_ids = {p.context.span_id for p in pages}
    for inv_id in made:
        [accepted] = transition_spans(spans, inv_id, "accepted")
        [killed] = transition_spans(spans, inv_id, "killed")
        assert killed.parent.span_id in page_ids
        assert killed.context.trace_id == asked.get_span_context().trace_id
        assert linked(killed) == [ids(accepted.context)]
