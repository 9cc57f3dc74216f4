"""page_spans makes the spans the SDK would: the same span context (IDs from the
provider's generator, trace flags, trace state, the sampler's decision) and, encoded,
the same OTLP message as the SDK's own encoder makes of the SDK's span."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common._internal import _encode_attributes
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ParentBased,
    TraceIdRatioBased,
)

from invoctl_server import page_spans, telemetry
from invoctl_server._otlp_exporter import Exporter

SCOPE = "invoctl.server"
START, END = 1_700_000_000_123_456_789, 1_700_000_000_987_654_321


class Replayed(IdGenerator):
    """Random IDs that can be given out again: the SDK's span and ours get the same."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._span, self._trace = 0x1234_5678_0000_0000, 0xABCD << 100

    def generate_span_id(self) -> int:
        self._span += 1
        return self._span

    def generate_trace_id(self) -> int:
        self._trace += 1
        return self._trace


def _provider(sampler=None) -> TracerProvider:
    resource = Resource.create(
        {"service.name": "page-spans-test", "deployment.environment": "test", "shard": 7}
    )
    return TracerProvider(
        resource=resource, sampler=sampler, id_generator=Replayed(), shutdown_on_exit=False
    )


@pytest.fixture
def make():
    """page_spans.PageSpans for a provider; shut down after the test (nothing is sent:
    its exporter's endpoint is never called)."""
    made = []

    def make(provider):
        exporter = Exporter(endpoint="http://127.0.0.1:9", insecure=True)
        made.append(page_spans.PageSpans(provider, exporter, SCOPE))
        return made[-1]

    yield make
    for p in made:
        p.shutdown()


def _attributes(i: int) -> dict:
    return {
        "restate.invocation.id": f"inv_{i:020d}",
        "restate.invocation.target": "Svc/key/handler",
        "invoctl.state.from": "suspended",
        "invoctl.state.to": "ready",
        "invoctl.event": "cancelled",
        "invoctl.actor": "bulk:bulk_1",
    }


def _remote(trace_id: int, span_id: int, state: trace.TraceState | None = None):
    return trace.SpanContext(
        trace_id, span_id, is_remote=True, trace_flags=trace.TraceFlags(1), trace_state=state
    )


def _parents(provider: TracerProvider):
    """Parent contexts a page's transition may have: the page's span (local, and a child
    of a remote caller with a trace state), an invocation's own trace (remote), none."""
    caller = _remote(0x77 << 64, 0x99, trace.TraceState([("vendor", "v1")]))
    caller_ctx = trace.set_span_in_context(trace.NonRecordingSpan(caller))
    page = provider.get_tracer("page").start_span("bulk cancel page", context=caller_ctx)
    own = trace.set_span_in_context(trace.NonRecordingSpan(_remote(0x55 << 64, 0x66)))
    return {"page": trace.set_span_in_context(page), "own": own, "root": trace.Context()}


def _both(provider, pages, parent, i):
    """The SDK's span and ours, with the same IDs, times and data."""
    links = [trace.Link(_remote(0x1000 + i, 0x2000 + i))]
    name = "invocation cancelled"
    provider.id_generator.reset()
    sdk = provider.get_tracer(SCOPE).start_span(
        name, context=parent, links=links, attributes=_attributes(i), start_time=START
    )
    sdk.end(end_time=END)
    provider.id_generator.reset()
    ours = pages.start_span(name, context=parent, links=links, attributes=_attributes(i))
    ours.start_time = START
    return sdk, ours


@pytest.mark.parametrize("where", ["page", "own", "root"])
def test_the_encoding_is_the_sdk_encoders(make, where):
    provider = _provider()
    pages = make(provider)
    parent = _parents(provider)[where]
    sdk, ours = _both(provider, pages, parent, 1)
    assert ours.get_span_context() == sdk.get_span_context()
    theirs = encode_spans([sdk])
    body = page_spans.encode_request(
        page_spans.encode_envelope(provider.resource, SCOPE), [page_spans.encode_span(ours, END)]
    )
    assert ExportTraceServiceRequest.FromString(body) == theirs


def test_a_page_of_spans_is_one_request(make):
    provider = _provider()
    pages = make(provider)
    parent = _parents(provider)["page"]
    pairs = [_both(provider, pages, parent, i) for i in range(50)]
    body = page_spans.encode_request(
        page_spans.encode_envelope(provider.resource, SCOPE),
        [page_spans.encode_span(ours, END) for _, ours in pairs],
    )
    request = ExportTraceServiceRequest.FromString(body)
    assert request == encode_spans([sdk for sdk, _ in pairs])
    assert len(request.resource_spans[0].scope_spans[0].spans) == 50


@pytest.mark.parametrize(
    "sampler",
    [ALWAYS_OFF, TraceIdRatioBased(0.5), ParentBased(ALWAYS_OFF)],
    ids=["always_off", "traceidratio", "parentbased_always_off"],
)
def test_the_sampler_decides_as_for_the_sdk(make, sampler):
    provider = _provider(sampler)
    pages = make(provider)
    for where, parent in _parents(provider).items():
        for i in range(20):
            sdk, ours = _both(provider, pages, parent, i)
            assert ours.get_span_context() == sdk.get_span_context(), (where, i)
            # Only a sampled span is sent (to the queue, when it ends).
            assert (ours._sink is not None) == sdk.get_span_context().trace_flags.sampled


@pytest.mark.parametrize(
    ("exporters", "installed"), [("otlp", True), ("otlp,console", False), ("console", False)]
)
def test_page_spans_are_used_with_otlp_alone(monkeypatch, exporters, installed):
    """With another exporter besides OTLP, it would not see a page's spans: then they are
    the SDK's, as every span is without OTLP."""
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", exporters)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    provider = telemetry.configure_from_env()
    try:
        assert provider is not None
        with page_spans.page():
            assert isinstance(page_spans.current(), page_spans.PageSpans) == installed
        assert page_spans.current() is None  # outside a page
    finally:
        page_spans.install(None)
        provider.shutdown()


@pytest.mark.parametrize(
    "value", ["", "Lab/echo", "é" * 70, "x" * 200, "y" * 20_000, 7, -1, 2.5, True]
)
def test_attribute_values_encode_as_protobuf_does(value):
    key = "restate.invocation.target"
    expected = trace_pb2.Span(attributes=_encode_attributes({key: value})).SerializeToString()
    assert page_spans._span_attributes({key: value}) == expected
    assert (
        page_spans._span_attributes({key: [value]})
        == trace_pb2.Span(attributes=_encode_attributes({key: [value]})).SerializeToString()
    )
