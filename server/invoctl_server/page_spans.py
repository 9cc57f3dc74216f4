"""A bulk page's transition spans, encoded as OTLP by hand and exported in batches.

An SDK span costs ~89 µs of server CPU from start to export (start_span, the OTLP
encoder, and the garbage collector its objects keep busy), and a bulk page makes one per
transition: in a bulk cancel they were most of the server's CPU (issue 15). Inside a bulk
page (`page()`, store/bulk.py), transition.py starts its spans with `current()` instead of
the SDK's tracer. They are the same spans: the name, attributes, parent, links, times,
trace flags and trace state the SDK would give them; their IDs from the provider's ID
generator and their sampling decided by the provider's sampler, called as the SDK calls
it; the provider's resource and the same instrumentation scope. They end at the commit
like the SDK's (transition.Committing), and the span a rolled-back page started is never
ended, so never sent. tests/unit/test_page_span_encoding.py checks the encoding against
the SDK's OTLP encoder.

What is cheaper: a span is a few fields until it ends; then it is encoded to protobuf
bytes, the constant parts (span names, attributes that repeat, the resource and scope)
encoded once, and queued; the export thread sends what is queued as one
ExportTraceServiceRequest, through the OTLP exporter the BatchSpanProcessor uses (its
endpoint, headers, TLS, timeout, compression and retries). The queue honours
OTEL_BSP_MAX_QUEUE_SIZE, OTEL_BSP_SCHEDULE_DELAY and OTEL_BSP_MAX_EXPORT_BATCH_SIZE as the
batch processor does, and is drained when the provider shuts down (this is one of its
span processors).

Only telemetry.py installs it, and only when OTLP is the one exporter: with the console
exporter, or no tracing, transitions keep the SDK's spans. So do all other spans.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import functools
import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.sdk.environment_variables import (
    OTEL_BSP_MAX_EXPORT_BATCH_SIZE,
    OTEL_BSP_MAX_QUEUE_SIZE,
    OTEL_BSP_SCHEDULE_DELAY,
)
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.sampling import Decision

if TYPE_CHECKING:
    from ._otlp_exporter import Exporter

log = logging.getLogger("invoctl.server")

_installed: PageSpans | None = None
_in_page: contextvars.ContextVar[bool] = contextvars.ContextVar("invoctl_page", default=False)


def install(page_spans: PageSpans | None) -> None:
    """Make `current()` return `page_spans` inside a page (None: the SDK's spans again)."""
    global _installed
    _installed = page_spans


@contextlib.contextmanager
def page() -> Iterator[None]:
    """The transitions made in this block are a bulk page's."""
    token = _in_page.set(True)
    try:
        yield
    finally:
        _in_page.reset(token)


def current() -> PageSpans | None:
    """What starts the spans of a bulk page's transitions, if in one and installed."""
    return _installed if _in_page.get() else None


# --- protobuf wire format: what the OTLP messages below need of it ----------------------


def _varint(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    if n < 0x4000:  # a span, a link, most requests' parts
        return bytes((n & 0x7F | 0x80, n >> 7))
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: int, payload: bytes) -> bytes:
    """A length-delimited field: `tag` is (field number << 3) | 2."""
    return bytes((tag,)) + _varint(len(payload)) + payload


def _any_value(value: Any) -> common_pb2.AnyValue:
    """As the SDK's OTLP encoder converts an attribute value."""
    if isinstance(value, bool):
        return common_pb2.AnyValue(bool_value=value)
    if isinstance(value, str):
        return common_pb2.AnyValue(string_value=value)
    if isinstance(value, int):
        return common_pb2.AnyValue(int_value=value)
    if isinstance(value, float):
        return common_pb2.AnyValue(double_value=value)
    if isinstance(value, bytes):
        return common_pb2.AnyValue(bytes_value=value)
    if isinstance(value, Sequence):
        return common_pb2.AnyValue(
            array_value=common_pb2.ArrayValue(values=[_any_value(v) for v in value])
        )
    raise TypeError(f"not an attribute value: {value!r}")


def _attribute(tag: int, key: str, value: Any) -> bytes:
    """A KeyValue (opentelemetry.proto.common.v1) as field `tag`."""
    if type(value) is str:  # nearly all: by hand, KeyValue{key, AnyValue{string_value}}
        k, v = key.encode(), value.encode()
        if len(k) + len(v) < 120:  # every length below fits in a byte: the usual case
            return b"%c%c\x0a%c%s\x12%c\x0a%c%s" % (
                tag,
                len(k) + len(v) + 6,
                len(k),
                k,
                len(v) + 2,
                len(v),
                v,
            )
        kv = _field(0x0A, k) + _field(0x12, _field(0x0A, v))
    else:
        kv = common_pb2.KeyValue(key=key, value=_any_value(value)).SerializeToString()
    return _field(tag, kv)


def _attributes(tag: int, attributes: Mapping[str, Any]) -> bytes:
    """Repeated KeyValue field `tag` (each once)."""
    return b"".join([_attribute(tag, k, v) for k, v in attributes.items()])


@functools.lru_cache(maxsize=4096)
def _span_attribute(item: tuple[str, Any]) -> bytes:
    """Span.attributes: most repeat in a page's spans (all but the invocation's ID), and
    the lookup is C code from the map() below."""
    return _attribute(0x4A, *item)


def _span_attributes(attributes: Mapping[str, Any]) -> bytes:
    try:
        return b"".join(map(_span_attribute, attributes.items()))
    except TypeError:  # a value that cannot be a cache key (a list): each encoded anew
        return _attributes(0x4A, attributes)


# Span.flags and Link.flags: the SDK's encoder sets "has is_remote", and is_remote of the
# parent (or linked) span (SpanFlags in trace.proto).
_HAS_IS_REMOTE, _IS_REMOTE = 0x100, 0x200


def _link(link: trace.Link) -> bytes:
    ctx = link.context
    flags = _HAS_IS_REMOTE | (_IS_REMOTE if ctx.is_remote else 0)
    body = b"".join(
        (
            b"\x0a\x10", ctx.trace_id.to_bytes(16, "big"),
            b"\x12\x08", ctx.span_id.to_bytes(8, "big"),
            _attributes(0x22, link.attributes) if link.attributes else b"",
            b"\x35", flags.to_bytes(4, "little"),
        )
    )  # fmt: skip
    return _field(0x6A, body)  # Span.links


@functools.lru_cache(maxsize=256)
def _constant(trace_id: int, state: str, parent_id: int, remote_parent: bool, name: str) -> bytes:
    """The fields of a span its page's other spans share (their order does not matter: the
    request is parsed before it is sent, and serialized again in field order)."""
    flags = _HAS_IS_REMOTE | (_IS_REMOTE if remote_parent else 0)
    return b"".join(
        (
            b"\x0a\x10", trace_id.to_bytes(16, "big"),
            _field(0x1A, state.encode()) if state else b"",
            b"\x22\x08" + parent_id.to_bytes(8, "big") if parent_id else b"",
            _field(0x2A, name.encode()), b"\x30\x01",  # Span.kind: INTERNAL
            b"\x7a\x00",  # Span.status: unset (a failed transition rolls back, unsent)
            b"\x85\x01", flags.to_bytes(4, "little"),  # Span.flags, a fixed32
        )
    )  # fmt: skip


def encode_span(span: PageSpan, end_time: int) -> bytes:
    """The span as a ScopeSpans.spans field (opentelemetry.proto.trace.v1.Span)."""
    ctx, parent = span.context, span.parent
    state = ",".join(f"{k}={v}" for k, v in ctx.trace_state.items()) if ctx.trace_state else ""
    if parent is None:
        constant = _constant(ctx.trace_id, state, 0, False, span.name)
    else:
        constant = _constant(ctx.trace_id, state, parent.span_id, parent.is_remote, span.name)
    body = b"".join(
        (
            constant,
            b"\x12\x08", ctx.span_id.to_bytes(8, "big"),
            b"\x39", span.start_time.to_bytes(8, "little"),
            b"\x41", end_time.to_bytes(8, "little"),
            _span_attributes(span.attributes),
            *map(_link, span.links),
        )
    )  # fmt: skip
    return _field(0x12, body)


def encode_envelope(resource, scope: str) -> tuple[bytes, bytes]:
    """The constant parts of a request around its spans: the ResourceSpans' resource and
    schema URL, and the ScopeSpans' scope, as the SDK's encoder writes them."""
    resource_field = _field(0x0A, _attributes(0x0A, resource.attributes))
    schema = _field(0x1A, resource.schema_url.encode()) if resource.schema_url else b""
    return resource_field + schema, _field(0x0A, _field(0x0A, scope.encode()))


def encode_request(envelope: tuple[bytes, bytes], spans: Sequence[bytes]) -> bytes:
    """An ExportTraceServiceRequest of encoded spans, all of one resource and scope."""
    resource, scope = envelope
    scope_spans = _field(0x12, scope + b"".join(spans))
    return _field(0x0A, resource + scope_spans)


# --- spans -------------------------------------------------------------------------------


class PageSpan:
    """A started span: what the SDK's span would record, and the span context."""

    __slots__ = ("_sink", "attributes", "context", "links", "name", "parent", "start_time")

    def __init__(self, sink, context, parent, name, attributes, links, start_time) -> None:
        self._sink: PageSpans | None = sink  # None: not sampled, so never sent
        self.context: trace.SpanContext = context
        self.parent: trace.SpanContext | None = parent
        self.name: str = name
        self.attributes: Mapping[str, Any] = attributes
        self.links: Sequence[trace.Link] = links
        self.start_time: int = start_time

    def get_span_context(self) -> trace.SpanContext:
        return self.context

    def is_recording(self) -> bool:
        return self._sink is not None

    # What a span started before the statement that reads its invocation learns from the
    # row it returns (transition.request_span_placed), as on the SDK's spans.
    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        self.attributes = {**self.attributes, **attributes}

    def add_link(self, context: trace.SpanContext) -> None:
        self.links = (*self.links, trace.Link(context))

    def end(self) -> None:
        if self._sink is not None:
            self._sink._ended(encode_span(self, time.time_ns()))
            self._sink = None


class PageSpans(SpanProcessor):
    """Starts the page spans of one instrumentation scope and exports them (see the
    module docstring); a span processor of the provider only to be flushed and shut down
    with it, so it must come before the batch processor that shuts the exporter down."""

    def __init__(self, provider: TracerProvider, exporter: Exporter, scope: str) -> None:
        self._sampler = provider.sampler
        self._ids = provider.id_generator
        self._envelope = encode_envelope(provider.resource, scope)
        self._exporter = exporter
        self._max_queue = _setting(OTEL_BSP_MAX_QUEUE_SIZE, 2048)
        self._batch = min(_setting(OTEL_BSP_MAX_EXPORT_BATCH_SIZE, 512), self._max_queue)
        self._delay = _setting(OTEL_BSP_SCHEDULE_DELAY, 5000) / 1000
        # Encoded when they end: bytes keep no objects alive for the garbage collector to
        # go through again and again until they are sent (that was a quarter of an SDK
        # span's cost).
        self._queue: collections.deque[bytes] = collections.deque()
        self._dropped = 0
        self._exporting = threading.Lock()  # one drain at a time, so a flush waits for it
        self._wake = threading.Condition()
        self._stopping = False
        self._worker = threading.Thread(target=self._run, name="invoctl-page-spans", daemon=True)
        self._worker.start()

    def start_span(
        self,
        name: str,
        context: otel_context.Context | None = None,
        links: Sequence[trace.Link] | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> PageSpan:
        """As the SDK's Tracer.start_span does it, for an INTERNAL span started now."""
        links = links or ()
        parent = trace.get_current_span(context).get_span_context()
        if parent.is_valid:
            trace_id, random_id = parent.trace_id, parent.trace_flags.random_trace_id
        else:
            parent = None
            trace_id, random_id = self._ids.generate_trace_id(), self._ids.is_trace_id_random()
        sampled = self._sampler.should_sample(
            context, trace_id, name, trace.SpanKind.INTERNAL, attributes, links
        )
        flags = trace.TraceFlags.SAMPLED if sampled.decision is Decision.RECORD_AND_SAMPLE else 0
        if random_id:
            flags |= trace.TraceFlags.RANDOM_TRACE_ID
        span_context = trace.SpanContext(
            trace_id, self._ids.generate_span_id(), is_remote=False,
            trace_flags=trace.TraceFlags(flags), trace_state=sampled.trace_state,
        )  # fmt: skip
        # Recorded or not, a span the sampler did not sample is not exported.
        sink = self if flags & trace.TraceFlags.SAMPLED else None
        return PageSpan(sink, span_context, parent, name, sampled.attributes, links, time.time_ns())

    def _ended(self, span: bytes) -> None:
        if self._stopping:
            return  # ended after the provider shut down, as the SDK's are then
        if len(self._queue) >= self._max_queue:
            if self._dropped == 0:
                log.warning("the page spans' queue is full: spans are dropped")
            self._dropped += 1
            return
        self._queue.append(span)
        if len(self._queue) >= self._batch:
            with self._wake:
                self._wake.notify()

    def _run(self) -> None:
        while not self._stopping:
            with self._wake:
                self._wake.wait_for(
                    lambda: self._stopping or len(self._queue) >= self._batch, self._delay
                )
            self._drain()

    def _drain(self) -> None:
        """Export every span queued now, in batches."""
        with self._exporting:
            while self._queue:
                n = min(self._batch, len(self._queue))
                body = encode_request(self._envelope, [self._queue.popleft() for _ in range(n)])
                try:
                    self._exporter.export_request(ExportTraceServiceRequest.FromString(body), n)
                except Exception:
                    log.exception("exporting %d page spans failed", n)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self._drain()
        return True

    def shutdown(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._worker.join()
        self._drain()


def _setting(name: str, default: int) -> int:
    """An OTEL_BSP_* number, as the batch processor reads it (a bad one: the default)."""
    try:
        value = int(os.environ.get(name, default))
    except ValueError:
        return default
    return value if value > 0 else default
