"""One span per state transition, matching the history rows (DESIGN.md section 6)."""

from __future__ import annotations

from opentelemetry import trace

from invoctl.client import state_name
from invoctl.sdk import Context, Service, TerminalError, Worker
from invoctl.v1 import invocation_pb2 as pb
from tests.e2e._operator import OPERATOR, Lab, transitions

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
    attempts = [s for s in attempts if s.name == "attempt Sleeper/nap"]
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


def stepper() -> Service:
    svc = Service("Stepper")

    @svc.handler()
    async def steps(ctx: Context) -> str:
        first = await ctx.run("first", lambda: "one")
        await ctx.run("second", _traced_step)
        await ctx.sleep(0.05)  # suspends: the next attempt replays the steps above
        return first + await ctx.run("third", lambda: "three")

    return svc


async def _traced_step() -> str:
    with trace.get_tracer("tests").start_as_current_span("inside second"):
        return "two"


async def test_run_steps_are_spans_of_their_attempt(server, client, spans):
    async with Worker([stepper()], server=server.address):
        assert await client.invoke("Stepper", "steps") == "onethree"
    [inv], _ = await client.list_invocations(service="Stepper")
    claimed = [t for t in (await client.get_journal(inv.id)).transitions if t.event == "claimed"]
    assert len(claimed) == 2
    attempts = sorted(_spans_of(spans, inv.id, SDK_SCOPE), key=lambda s: s.start_time)
    attempts = [s for s in attempts if s.name.startswith("attempt ")]
    assert [s.attributes["invoctl.attempt"] for s in attempts] == [1, 2]
    assert [s.attributes["invoctl.journal.replayed"] for s in attempts] == [0, 3]

    # Each attempt is a child of the transition that started it, and linked to it.
    for attempt, transition in zip(attempts, claimed, strict=True):
        assert format(attempt.parent.span_id, "016x") == transition.span_id
        [link] = attempt.links
        assert format(link.context.span_id, "016x") == transition.span_id
        assert format(link.context.trace_id, "032x") == transition.trace_id

    # Live steps only: the second attempt replays "first" and "second" without spans.
    runs = [s for s in _spans_of(spans, inv.id, SDK_SCOPE) if s.name.startswith("run ")]
    by_attempt = {
        a.context.span_id: [r.name for r in runs if r.parent.span_id == a.context.span_id]
        for a in attempts
    }
    assert list(by_attempt.values()) == [["run first", "run second"], ["run third"]]
    for run in runs:
        attempt = next(a for a in attempts if a.context.span_id == run.parent.span_id)
        assert run.context.trace_id == attempt.context.trace_id
        assert run.attributes["invoctl.step"] == run.name.removeprefix("run ")
        assert run.attributes["invoctl.attempt"] == attempt.attributes["invoctl.attempt"]
    assert [r.attributes["invoctl.journal.index"] for r in runs] == [0, 1, 3]

    # Spans the step's function makes are its children.
    [inside] = [s for s in spans.get_finished_spans() if s.name == "inside second"]
    [second] = [r for r in runs if r.name == "run second"]
    assert inside.parent.span_id == second.context.span_id


def failing_step() -> Service:
    svc = Service("FailingStep")

    @svc.handler()
    async def go(ctx: Context) -> None:
        await ctx.run("refuse", _refuse)

    return svc


def _refuse() -> None:
    raise TerminalError("no", code="REFUSED")


async def test_a_step_that_fails_terminally_has_an_error_span(server, client, spans):
    async with Worker([failing_step()], server=server.address):
        inv_id = await client.send("FailingStep", "go")
        await client.attach(inv_id)
    [run] = [s for s in _spans_of(spans, inv_id, SDK_SCOPE) if s.name == "run refuse"]
    assert run.status.status_code == trace.StatusCode.ERROR
    assert [e.name for e in run.events] == ["exception"]


async def test_client_rpcs_continue_the_callers_trace(server, client, spans):
    async with Lab(server.address, client) as lab:
        inv_id = await lab.make(pb.INVOCATION_STATE_RUNNING)
        with trace.get_tracer("tests").start_as_current_span("caller") as caller:
            await client.cancel_invocation(inv_id, reason="traced")
        # Outside any span, nothing is sent: a call made there starts its own trace.
        await client.get_invocation(inv_id)
    trace_id = format(caller.get_span_context().trace_id, "032x")

    [rpc] = [
        s
        for s in spans.get_finished_spans()
        if s.name == "/invoctl.v1.InvocationControl/CancelInvocation"
    ]
    assert rpc.parent is not None
    assert rpc.parent.span_id == caller.get_span_context().span_id
    [cancelled] = [t for t in await transitions(client, inv_id) if t.actor == OPERATOR]
    assert cancelled.trace_id == trace_id
    [span] = [
        s
        for s in _spans_of(spans, inv_id, SERVER_SCOPE)
        if format(s.context.span_id, "016x") == cancelled.span_id
    ]
    assert format(span.context.trace_id, "032x") == trace_id

    [get] = [
        s
        for s in spans.get_finished_spans()
        if s.name.endswith("/GetInvocation") and s.start_time > caller.end_time
    ]
    assert get.parent is None
    assert get.context.trace_id != caller.get_span_context().trace_id
