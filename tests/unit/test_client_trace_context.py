"""The client sends the caller's OpenTelemetry context with every RPC (W3C traceparent in
the gRPC metadata), next to its token, and nothing more when there is none."""

from __future__ import annotations

from opentelemetry import baggage, context, trace
from opentelemetry.sdk.trace import TracerProvider

from invoctl.client import Client

_tracer = TracerProvider().get_tracer("tests")  # a provider of its own: nothing exported


def test_no_active_span_sends_the_token_only() -> None:
    assert Client()._call_metadata() == ()
    assert Client(token="t0k")._call_metadata() == (("authorization", "Bearer t0k"),)


def test_an_active_span_is_sent_as_traceparent_with_the_token() -> None:
    client = Client(token="t0k")
    with _tracer.start_as_current_span("caller") as span:
        metadata = dict(client._call_metadata())
    ctx = span.get_span_context()
    version, trace_id, span_id, flags = metadata["traceparent"].split("-")
    assert (version, trace_id, span_id) == (
        "00",
        format(ctx.trace_id, "032x"),
        format(ctx.span_id, "016x"),
    )
    assert int(flags, 16) & 1  # sampled
    assert metadata["authorization"] == "Bearer t0k"
    # Outside the span again: nothing.
    assert client._call_metadata() == (("authorization", "Bearer t0k"),)


def test_baggage_goes_along() -> None:
    token = context.attach(baggage.set_baggage("tenant", "acme"))
    try:
        assert dict(Client()._call_metadata()) == {"baggage": "tenant=acme"}
    finally:
        context.detach(token)


def test_a_non_recording_parent_is_still_propagated() -> None:
    # A span context from elsewhere (say, an incoming request this process did not sample)
    # is passed on as it is, unsampled.
    remote = trace.SpanContext(
        trace_id=0x1234, span_id=0x5678, is_remote=True, trace_flags=trace.TraceFlags(0)
    )
    with trace.use_span(trace.NonRecordingSpan(remote)):
        [(key, value)] = Client()._call_metadata()
    assert (key, value) == ("traceparent", f"00-{0x1234:032x}-{0x5678:016x}-00")
