"""A real OTLP/gRPC trace receiver on 127.0.0.1, for tests: the collector's TraceService
(opentelemetry-proto) on grpc.aio, keeping every span it is sent.

    async with OtlpReceiver() as receiver:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, ...}
        ...
        await receiver.wait_for_spans(span_ids)

It runs on the test's event loop: a test must not block the loop (a server process's
`stop()` goes through asyncio.to_thread) while an exporter may be sending to it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2

from tests.support import wait_for


def _value(v: common_pb2.AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return tuple(_value(x) for x in v.array_value.values)
    return getattr(v, kind) if kind else None


def _attributes(kvs: Iterable[common_pb2.KeyValue]) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in kvs}


@dataclasses.dataclass(frozen=True)
class ReceivedSpan:
    """One span as it arrived, IDs in hex as history rows keep them."""

    trace_id: str
    span_id: str
    parent_span_id: str  # "" for a root span
    name: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope: str
    links: tuple[tuple[str, str], ...]  # (trace_id, span_id)


class OtlpReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.by_span_id: dict[str, ReceivedSpan] = {}
        self.exports = 0
        self._server: grpc.aio.Server | None = None
        self.endpoint = ""

    async def __aenter__(self) -> OtlpReceiver:
        self._server = grpc.aio.server(
            options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)]
        )
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self._server)
        port = self._server.add_insecure_port("127.0.0.1:0")
        await self._server.start()
        self.endpoint = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        await self._server.stop(grace=0)

    async def Export(self, request, context):  # the gRPC method's name
        self.exports += 1
        for resource_spans in request.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received = ReceivedSpan(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        name=span.name,
                        attributes=_attributes(span.attributes),
                        resource=resource,
                        scope=scope_spans.scope.name,
                        links=tuple((ln.trace_id.hex(), ln.span_id.hex()) for ln in span.links),
                    )
                    self.spans.append(received)
                    self.by_span_id[received.span_id] = received
        return trace_service_pb2.ExportTraceServiceResponse()

    def named(self, name: str) -> list[ReceivedSpan]:
        return [s for s in self.spans if s.name == name]

    async def wait_for_spans(
        self, span_ids: Iterable[str], *, timeout: float = 30.0
    ) -> dict[str, ReceivedSpan]:
        """The spans with these IDs, once every one of them has arrived (the exporter
        sends in batches); fails after `timeout` naming the ones still missing."""
        wanted = set(span_ids)

        async def arrived() -> dict[str, ReceivedSpan] | None:
            missing = wanted - self.by_span_id.keys()
            return None if missing else {i: self.by_span_id[i] for i in wanted}

        try:
            return await wait_for(arrived, timeout=timeout, what="spans at the receiver")
        except AssertionError:
            missing = sorted(wanted - self.by_span_id.keys())
            raise AssertionError(
                f"{len(missing)} of {len(wanted)} spans never arrived "
                f"({len(self.spans)} received in {self.exports} exports): {missing[:10]}"
            ) from None
