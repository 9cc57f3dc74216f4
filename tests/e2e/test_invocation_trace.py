"""One trace per invocation (DESIGN.md section 6): the transitions no RPC caused (claims,
suspensions, wake-ups, retries, completions reported over the worker stream, the cleaner)
are children of the invocation's `accepted` span, and the worker's spans hang off them."""

from __future__ import annotations

from invoctl.sdk import Context, Service, Worker
from invoctl.v1 import workers_pb2 as wpb
from tests.e2e._raw import RawSession, register
from tests.e2e._trace import transition_spans
from tests.support import wait_for


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


async def test_the_cleaners_purge_is_in_the_invocations_trace(server, client, spans):
    brief = Service("Brief", retention=0.3)

    @brief.handler()
    async def done(ctx: Context) -> str:
        return "done"

    async with Worker([brief], server=server.address):
        finished = await client.send("Brief", "done")
        await client.attach(finished)

    async def purged():
        return transition_spans(spans, finished, "purged")

    [purge] = await wait_for(purged, what="the cleaner's purge")
    [accepted] = transition_spans(spans, finished, "accepted")
    assert purge.attributes["invoctl.actor"].startswith("cleaner:")
    assert purge.context.trace_id == accepted.context.trace_id
    assert purge.parent.span_id == accepted.context.span_id
