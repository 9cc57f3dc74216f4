"""One span per state transition, matching the history rows (DESIGN.md section 6)."""

from __future__ import annotations

from invoctl.client import state_name
from invoctl.sdk import Context, Service, Worker

SERVER_SCOPE = "invoctl.server"  # the tracer transition.py emits with
SDK_SCOPE = "invoctl.sdk"


def sleeper() -> Service:
    svc = Service("Sleeper")

    @svc.handler()
    async def nap(ctx: Context, seconds: float) -> str:
        await ctx.run("before", lambda: "awake")
        await ctx.sleep(seconds)
        return "rested"

    return svc


def _spans_of(spans, inv_id: str, scope: str) -> list:
    return [
        s
        for s in spans.get_finished_spans()
        if s.attributes.get("restate.invocation.id") == inv_id
        and s.instrumentation_scope.name == scope
    ]


async def test_every_transition_has_its_span(server, client, spans):
    async with Worker([sleeper()], server=server.address):
        assert await client.invoke("Sleeper", "nap", 0.2) == "rested"
    [inv], _ = await client.list_invocations(service="Sleeper")
    journal = await client.get_journal(inv.id)
    history = journal.transitions
    assert [t.event for t in history] == [
        "accepted",
        "claimed",
        "suspended",
        "woken",
        "claimed",
        "completed",
    ]

    emitted = sorted(_spans_of(spans, inv.id, SERVER_SCOPE), key=lambda s: s.start_time)
    assert len(emitted) == len(history)
    by_span_id = {format(s.context.span_id, "016x"): s for s in emitted}
    assert [t.span_id for t in history] == [format(s.context.span_id, "016x") for s in emitted]
    for t in history:
        span = by_span_id[t.span_id]
        assert format(span.context.trace_id, "032x") == t.trace_id
        attrs = span.attributes
        assert attrs["invoctl.event"] == t.event
        assert attrs["invoctl.state.to"] == state_name(t.to_state)
        assert attrs["invoctl.state.from"] == (state_name(t.from_state) if t.from_state else "")
        assert attrs["invoctl.actor"] == t.actor
        assert attrs["restate.invocation.target"] == "Sleeper/nap"

    # Each attempt the worker ran is traced under the transition that started it.
    claimed = [t.span_id for t in history if t.event == "claimed"]
    attempts = sorted(_spans_of(spans, inv.id, SDK_SCOPE), key=lambda s: s.start_time)
    assert [format(s.parent.span_id, "016x") for s in attempts] == claimed


async def test_transition_made_by_an_rpc_is_part_of_its_trace(server, client, spans):
    async with Worker([sleeper()], server=server.address):
        inv_id = await client.send("Sleeper", "nap", 0)
        await client.attach(inv_id)
    [accepted] = [
        s
        for s in _spans_of(spans, inv_id, SERVER_SCOPE)
        if s.attributes["invoctl.event"] == "accepted"
    ]
    rpc_spans = {s.context.span_id: s for s in spans.get_finished_spans()}
    assert accepted.parent is not None
    parent = rpc_spans[accepted.parent.span_id]
    assert parent.name == "/invoctl.v1.Ingress/Invoke"
    assert parent.context.trace_id == accepted.context.trace_id
