"""Traces at a real OTLP/gRPC receiver: a server process configured by the standard OTEL_*
variables exports a span for every history row, an operator's request joins the trace of
the client call that made it, and the sampling and service-name variables take effect."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry import trace

from invoctl.client import Client, selector, state_name
from invoctl.v1 import invocation_pb2 as pb
from tests._otlp import OtlpReceiver
from tests.e2e._helpers import wait_state
from tests.e2e._operator import ALL_STATES, OPERATOR, Lab, transitions
from tests.support import ServerProcess, wait_for

SERVICE_NAME = "invoctl-traces-test"
S = pb


# A batch delay and a batch no test outlasts: spans are sent only when the server exits.
UNTIL_EXIT = {
    "OTEL_BSP_SCHEDULE_DELAY": "600000",
    "OTEL_BSP_MAX_QUEUE_SIZE": "100000",
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "100000",
}


def exporting_to(receiver: OtlpReceiver, **extra: str) -> dict[str, str]:
    """The environment of a server that exports its spans to `receiver` at once."""
    return {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_BSP_SCHEDULE_DELAY": "50",  # milliseconds
        "OTEL_SERVICE_NAME": SERVICE_NAME,
        **extra,
    }


@pytest.fixture
async def receiver():
    async with OtlpReceiver() as r:
        yield r


async def start_server(database: str, env: dict[str, str]) -> ServerProcess:
    # start() blocks reading the child's output: off the loop, which the receiver needs.
    return await asyncio.to_thread(
        ServerProcess(database, "--lease-seconds", "3", "--poll-interval", "0.2", env=env).start
    )


def _hex(trace_id: int) -> str:
    return format(trace_id, "032x")


async def test_every_history_row_has_its_span_at_the_receiver(database, receiver, spans):
    server = await start_server(database, exporting_to(receiver))
    tracer = trace.get_tracer("tests")
    histories: dict[str, list[pb.Transition]] = {}  # read before a purge deletes them
    try:
        async with Client(server.address) as client, Lab(server.address, client) as lab:
            made = {state: await lab.make(state) for state in ALL_STATES}

            # Every operator action, the cancel inside a client span of this process.
            with tracer.start_as_current_span("ask for a cancel") as caller:
                await client.cancel_invocation(made[S.INVOCATION_STATE_RUNNING])
            await client.kill_invocation(made[S.INVOCATION_STATE_SUSPENDED])
            failing = made[S.INVOCATION_STATE_BACKING_OFF]
            await client.pause_invocation(failing)
            await client.resume_invocation(failing)
            await wait_for(
                lambda: _events_include(client, failing, "attempt_failed", 2),
                what="the resumed attempt to fail",
            )
            await client.resume_invocation(made[S.INVOCATION_STATE_PAUSED])
            await wait_for(
                lambda: _events_include(
                    client, made[S.INVOCATION_STATE_PAUSED], "retries_exhausted", 2
                ),
                what="the resumed attempt to pause again",
            )
            done = made[S.INVOCATION_STATE_COMPLETED]
            new = await client.restart_invocation_as_new(done)
            await client.attach(new.id)
            await client.purge_journal(done)
            histories[new.id] = await transitions(client, new.id)
            await client.purge_invocation(new.id)
            # One bulk operation, over the invocations that had not started.
            not_started = [
                made[s]
                for s in (
                    S.INVOCATION_STATE_PENDING,
                    S.INVOCATION_STATE_SCHEDULED,
                    S.INVOCATION_STATE_READY,
                )
            ]
            with tracer.start_as_current_span("ask for a bulk cancel") as bulk_caller:
                progress = [
                    p
                    async for p in client.bulk_operation(
                        "cancel", selector(invocation_ids=not_started)
                    )
                ]
            assert progress[-1].succeeded == 3
            for inv_id in not_started:
                await wait_state(client, inv_id, S.INVOCATION_STATE_COMPLETED)

            async for inv in client.iter_invocations():
                histories[inv.id] = await transitions(client, inv.id)

        # Through every state, and every operator action, all traced.
        reached = {t.to_state for h in histories.values() for t in h}
        assert reached >= set(ALL_STATES), [state_name(s) for s in set(ALL_STATES) - reached]
        by_operator = {t.event for h in histories.values() for t in h if t.actor == OPERATOR}
        assert by_operator >= {"cancelled", "killed", "paused", "resumed", "accepted"}
        rows = [(inv_id, t) for inv_id, h in histories.items() for t in h]
        assert all(t.trace_id and t.span_id for _, t in rows)

        received = await receiver.wait_for_spans(t.span_id for _, t in rows)
        for inv_id, t in rows:
            span = received[t.span_id]
            assert span.trace_id == t.trace_id, (inv_id, t.event)
            assert span.name == f"invocation {t.event}"
            assert span.attributes["restate.invocation.id"] == inv_id
            assert span.attributes["invoctl.event"] == t.event
            assert span.attributes["invoctl.actor"] == t.actor
            assert span.scope == "invoctl.server"
            assert span.resource["service.name"] == SERVICE_NAME

        # What no operator did is in the trace of the invocation's accepted transition, a
        # child of it, whatever made it (dispatch, timers, the worker's stream).
        for inv_id, h in histories.items():
            accepted = h[0]
            assert accepted.event == "accepted"
            for t in h[1:]:
                if t.actor == OPERATOR or t.actor.startswith("bulk:"):
                    continue
                assert t.trace_id == accepted.trace_id, (inv_id, t.event)
                assert received[t.span_id].parent_span_id == accepted.span_id, (inv_id, t.event)

        # The purge deleted the history; its span still arrives, in the invocation's name.
        async def purge_arrived():
            return receiver.named("invocation purged")

        [purged] = await wait_for(purge_arrived, what="the purge's span")
        assert purged.attributes["restate.invocation.id"] == new.id

        # The cancel is in the trace of the client span that asked for it: the server's RPC
        # span is that span's child, and the transition is in the same trace.
        trace_id = _hex(caller.get_span_context().trace_id)
        [cancelled] = [
            t
            for t in histories[made[S.INVOCATION_STATE_RUNNING]]
            if t.event == "cancelled" and t.actor == OPERATOR
        ]
        assert cancelled.trace_id == trace_id
        [rpc] = receiver.named("/invoctl.v1.InvocationControl/CancelInvocation")
        assert rpc.trace_id == trace_id
        assert rpc.parent_span_id == format(caller.get_span_context().span_id, "016x")
        # So is the bulk operation's, through its streaming RPC.
        bulk_trace = _hex(bulk_caller.get_span_context().trace_id)
        for inv_id in not_started:
            [t] = [t for t in histories[inv_id] if t.event == "cancelled"]
            assert t.trace_id == bulk_trace, inv_id

        # The worker (in this process) continued the server's traces: each attempt span
        # is a child of, and linked to, the transition that started it, at the receiver.
        echo = [
            s
            for s in spans.get_finished_spans()
            if s.name == "attempt Lab/echo"
            and s.attributes["restate.invocation.id"] == made[S.INVOCATION_STATE_COMPLETED]
        ]
        [attempt] = echo
        claimed = received[format(attempt.parent.span_id, "016x")]
        assert claimed.name == "invocation claimed"
        assert claimed.trace_id == _hex(attempt.context.trace_id)
        assert [(claimed.trace_id, claimed.span_id)] == [
            (_hex(ln.context.trace_id), format(ln.context.span_id, "016x")) for ln in attempt.links
        ]
    finally:
        await asyncio.to_thread(server.stop)


async def _events_include(client: Client, inv_id: str, event: str, count: int) -> bool:
    return [t.event for t in await transitions(client, inv_id)].count(event) >= count


async def test_sampling_variables_are_obeyed(database, receiver):
    # A ratio of 0: nothing is sampled (were OTEL_TRACES_SAMPLER_ARG ignored, the ratio
    # would be 1 and everything exported).
    env = exporting_to(receiver, OTEL_TRACES_SAMPLER="traceidratio", OTEL_TRACES_SAMPLER_ARG="0")
    server = await start_server(database, env)
    try:
        async with Client(server.address) as client, Lab(server.address, client) as lab:
            inv_id = await lab.make(S.INVOCATION_STATE_COMPLETED)
            history = await transitions(client, inv_id)
    finally:
        # The process flushes its exporter as it exits: whatever it would send, it has.
        await asyncio.to_thread(server.stop)
    assert server.proc is not None and server.proc.returncode == 0
    assert [t.event for t in history] == ["accepted", "claimed", "completed"]
    assert receiver.spans == []


async def test_spans_of_an_exiting_server_are_flushed(database, receiver):
    """Spans still queued when the server stops are sent before it exits (a long batch
    delay and a huge batch: without the flush at exit, none would arrive)."""
    env = exporting_to(receiver, **UNTIL_EXIT)
    server = await start_server(database, env)
    try:
        async with Client(server.address) as client, Lab(server.address, client) as lab:
            inv_id = await lab.make(S.INVOCATION_STATE_COMPLETED)
            history = await transitions(client, inv_id)
        assert receiver.spans == []  # still queued
    finally:
        await asyncio.to_thread(server.stop)
    received = await receiver.wait_for_spans(t.span_id for t in history)
    assert {s.resource["service.name"] for s in received.values()} == {SERVICE_NAME}


async def test_without_an_exporter_no_span_is_made(database):
    """OTEL_TRACES_EXPORTER=none (the default): the server records no spans, so it does not
    trace its RPCs either, even for a caller that sends a traceparent: the history has no
    trace IDs."""
    server = await start_server(database, {"OTEL_TRACES_EXPORTER": "none"})
    tracer = trace.get_tracer("tests")
    try:
        async with Client(server.address) as client, Lab(server.address, client) as lab:
            with tracer.start_as_current_span("caller"):  # the client sends its traceparent
                inv_id = await lab.make(S.INVOCATION_STATE_SUSPENDED)
                await client.cancel_invocation(inv_id, reason="no tracing")
            steps = await transitions(client, inv_id)
    finally:
        server.stop()
    assert [t.event for t in steps][:2] == ["accepted", "claimed"]
    assert {(t.trace_id, t.span_id) for t in steps} == {("", "")}
