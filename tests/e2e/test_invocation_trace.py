"""One trace per invocation (DESIGN.md section 6): the transitions no RPC caused (claims,
suspensions, wake-ups, retries, completions reported over the worker stream, the cleaner)
are children of the invocation's `accepted` span, and the worker's spans hang off them."""

from __future__ import annotations

import asyncio

from invoctl.sdk import Context, Service, Worker
from invoctl.v1 import workers_pb2 as wpb
from tests.e2e._raw import RawSession, register
from tests.e2e._trace import SDK_SCOPE, ids, linked, spans_of, transition_spans
from tests.support import wait_for


def life_services() -> list[Service]:
    """Life/go: a run, a sleep and a call; Life/fire: a send. Echo/back: one run."""
    life = Service("Life")

    @life.handler()
    async def go(ctx: Context, name: str) -> str:
        greeting = await ctx.run("compose", lambda: f"Hello, {name}")
        await ctx.sleep(0.05)
        return await ctx.call("Echo", "back", greeting)

    @life.handler()
    async def fire(ctx: Context) -> str:
        ctx.send("Echo", "back", "fired")
        return "sent"

    echo = Service("Echo")

    @echo.handler()
    async def back(ctx: Context, value: str) -> str:
        return await ctx.run("echo", lambda: value)

    return [life, echo]


async def test_an_invocation_with_a_run_a_sleep_and_a_call_is_one_trace(server, client, spans):
    async with Worker(life_services(), server=server.address):
        assert await client.invoke("Life", "go", "Ada") == "Hello, Ada"
    [caller], _ = await client.list_invocations(service="Life")
    [callee], _ = await client.list_invocations(service="Echo")
    caller_events = [t.event for t in (await client.get_journal(caller.id)).transitions]
    assert caller_events == [
        "accepted", "claimed", "suspended", "woken", "claimed", "suspended", "woken",
        "claimed", "completed",
    ]  # fmt: skip

    [invoke] = [s for s in spans.get_finished_spans() if s.name == "/invoctl.v1.Ingress/Invoke"]
    trace_id = invoke.context.trace_id
    # Every history row of both, and every span of both on either side, is in the trace
    # the Invoke request started.
    for inv in (caller, callee):
        for t in (await client.get_journal(inv.id)).transitions:
            assert t.trace_id == format(trace_id, "032x"), (inv.id, t.event)
    mine = [*spans_of(spans, caller.id), *spans_of(spans, callee.id)]
    assert {s.context.trace_id for s in mine} == {trace_id}
    worker_spans = sorted(s.name for s in mine if s.instrumentation_scope.name == SDK_SCOPE)
    assert worker_spans == [
        "attempt Echo/back", "attempt Life/go", "attempt Life/go", "attempt Life/go",
        "run compose", "run echo",
    ]  # fmt: skip

    # The accepted span is the parent of every later transition of its invocation, and a
    # call's callee is accepted as a child of its caller's accepted span.
    [accepted] = transition_spans(spans, caller.id, "accepted")
    assert accepted.parent.span_id == invoke.context.span_id
    [callee_accepted] = transition_spans(spans, callee.id, "accepted")
    assert callee_accepted.parent.span_id == accepted.context.span_id
    for inv, root in ((caller, accepted), (callee, callee_accepted)):
        later = [s for s in transition_spans(spans, inv.id) if s is not root]
        assert later and all(s.parent.span_id == root.context.span_id for s in later)
        assert all(not s.links for s in later)  # no operator acted on them

    # None is a child of the worker's long-lived session stream (whose span the server
    # ends once it has seen the stream close).
    async def streams() -> set[int]:
        names = (s for s in spans.get_finished_spans() if s.name == "/invoctl.v1.Workers/Connect")
        return {s.context.span_id for s in names}

    stream_ids = await wait_for(streams, what="the session stream's span")
    assert not [s for s in mine if s.parent is not None and s.parent.span_id in stream_ids]


async def test_a_send_starts_a_trace_of_its_own_linked_to_the_senders(server, client, spans):
    async with Worker(life_services(), server=server.address):
        assert await client.invoke("Life", "fire") == "sent"
        [sent], _ = await client.list_invocations(service="Echo")
        await client.attach(sent.id)
    [sender], _ = await client.list_invocations(service="Life")
    [sender_accepted] = transition_spans(spans, sender.id, "accepted")
    [accepted] = transition_spans(spans, sent.id, "accepted")
    # A send outlives its sender (and may be delayed for days): its own trace, whose
    # root leads back to the sender's.
    assert accepted.parent is None
    assert accepted.context.trace_id != sender_accepted.context.trace_id
    assert linked(accepted) == [ids(sender_accepted.context)]
    later = [s for s in spans_of(spans, sent.id) if s is not accepted]
    assert {s.context.trace_id for s in later} == {accepted.context.trace_id}


async def test_a_lapsed_lease_and_its_retry_stay_in_the_invocations_trace(workers, client, spans):
    deployment_id = await register(workers)
    first = RawSession(workers, deployment_id, "first")
    second = RawSession(workers, deployment_id, "second")
    try:
        await first.open(heartbeat=False)
        inv_id = await client.send("Raw", "work", "in")
        start = (await first.read("attempt")).attempt
        await first.close()  # the stream ends: the lease of its attempt lapses now
        await second.open(heartbeat=True)
        retry = (await second.read("attempt")).attempt
        assert (retry.invocation_id, retry.attempt) == (inv_id, 2)
        ack = await second.request(
            complete=wpb.AttemptComplete(invocation_id=inv_id, attempt=2, output='"done"')
        )
        assert ack.error_reason == ""
    finally:
        await first.close()
        await second.close()
    events = [t.event for t in (await client.get_journal(inv_id)).transitions]
    assert events == ["accepted", "claimed", "lease_expired", "retry_due", "claimed", "completed"]
    [accepted] = transition_spans(spans, inv_id, "accepted")
    later = [s for s in transition_spans(spans, inv_id) if s is not accepted]
    assert len(later) == 5
    for span in later:
        assert span.context.trace_id == accepted.context.trace_id, span.name
        assert span.parent.span_id == accepted.context.span_id, span.name
    # Both attempts were handed the invocation's trace.
    trace_hex = format(accepted.context.trace_id, "032x")
    assert start.traceparent.split("-")[1] == retry.traceparent.split("-")[1] == trace_hex


async def test_the_cleaners_purge_is_in_the_invocations_trace(server, client, op, spans):
    brief = Service("Brief", retention=0.3)
    release = asyncio.Event()

    @brief.handler()
    async def done(ctx: Context) -> str:
        return "done"

    @brief.handler()
    async def block(ctx: Context) -> str:
        await ctx.run("block", release.wait)
        return "released"

    try:
        async with Worker([brief], server=server.address):
            finished = await client.send("Brief", "done")
            await client.attach(finished)
            killed = await client.send("Brief", "block")
            await wait_for(lambda: _has_event(client, killed, "claimed"), what="it to run")
            await op.kill(killed)
    finally:
        release.set()

    async def purged():
        found = [transition_spans(spans, i, "purged") for i in (finished, killed)]
        return found if all(found) else None

    [[finished_purge], [killed_purge]] = await wait_for(purged, what="the cleaner's purges")
    for inv_id, purge in ((finished, finished_purge), (killed, killed_purge)):
        [accepted] = transition_spans(spans, inv_id, "accepted")
        assert purge.attributes["invoctl.actor"].startswith("cleaner:")
        assert purge.context.trace_id == accepted.context.trace_id
        assert purge.parent.span_id == accepted.context.span_id
    # The kill was the operator's, in its request's trace; the invocation's own trace
    # leads to it from its next span, the purge.
    [kill] = transition_spans(spans, killed, "killed")
    assert kill.context.trace_id != killed_purge.context.trace_id
    assert linked(killed_purge) == [ids(kill.context)]
    assert not finished_purge.links


async def _has_event(client, inv_id: str, event: str) -> bool:
    return event in [t.event for t in (await client.get_journal(inv_id)).transitions]
