"""Tracing over HTTP: each request is a span named for its route, a `traceparent` header
continues the caller's trace, and the transitions the request causes are its children
(as over gRPC, DESIGN.md section 6)."""

from __future__ import annotations

from opentelemetry.trace import SpanKind

from tests.e2e._operator import OPERATOR, S, transitions

SERVER_SCOPE = "invoctl.server"
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


def _request_span(spans, name: str):
    [span] = [s for s in spans.get_finished_spans() if s.name == name and s.kind == SpanKind.SERVER]
    return span


async def test_a_traceparent_makes_the_request_and_its_transitions_part_of_the_trace(
    http, lab, client, spans
):
    inv_id = await lab.make(S.INVOCATION_STATE_SUSPENDED)
    spans.clear()
    traceparent = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
    answer = await http.patch(f"/invocations/{inv_id}/kill", headers={"traceparent": traceparent})
    assert answer.status == 200
    request = _request_span(spans, "PATCH /invocations/{invocation_id}/kill")
    assert format(request.context.trace_id, "032x") == CALLER_TRACE
    assert format(request.parent.span_id, "016x") == CALLER_SPAN
    assert request.attributes["http.route"] == "/invocations/{invocation_id}/kill"
    assert request.attributes["enduser.id"] == "anonymous"

    [killed] = [t for t in await transitions(client, inv_id) if t.actor == OPERATOR]
    assert killed.trace_id == CALLER_TRACE  # the history row keeps the trace
    [span] = [
        s for s in spans.get_finished_spans()
        if s.instrumentation_scope.name == SERVER_SCOPE
        and s.attributes.get("restate.invocation.id") == inv_id
    ]  # fmt: skip
    assert format(span.context.span_id, "016x") == killed.span_id
    assert span.parent.span_id == request.context.span_id  # a child of the request


async def test_without_a_traceparent_a_request_starts_a_trace_of_its_own(http, lab, client, spans):
    inv_id = await lab.make(S.INVOCATION_STATE_BACKING_OFF)
    spans.clear()
    assert (await http.patch(f"/invocations/{inv_id}/pause")).status == 202
    request = _request_span(spans, "PATCH /invocations/{invocation_id}/pause")
    assert request.parent is None
    [paused] = [t for t in await transitions(client, inv_id) if t.actor == OPERATOR]
    assert paused.trace_id == format(request.context.trace_id, "032x")
