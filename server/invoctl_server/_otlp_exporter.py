"""The OTLP/gRPC span exporter of telemetry.py, which also sends requests page_spans
encoded. Imported only when OTLP is configured: the exporter's modules take a tenth of a
second to import."""

from __future__ import annotations

import threading
from typing import Any

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export import SpanExportResult


class Exporter(OTLPSpanExporter):
    """The OTLP/gRPC span exporter, which also sends requests encoded already.

    Its public export() takes SDK spans only. The one way to reuse what it does around
    the call (the channel from OTEL_EXPORTER_OTLP_*, headers, timeout, compression,
    retries, reconnecting) for a request of our own is its template method: _export()
    calls _translate_data() and _count_data(), which OTLPSpanExporter itself implements
    for SDK spans. They are private names of opentelemetry-exporter-otlp-proto-grpc, used
    here and nowhere else. The lock makes the batch processor's exports and ours take
    turns on the one channel (reconnecting replaces it)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._turn = threading.Lock()

    def export(self, spans):  # the BatchSpanProcessor's SDK spans
        with self._turn:
            return super().export(spans)

    def export_request(self, request: ExportTraceServiceRequest, count: int) -> SpanExportResult:
        with self._turn:
            return self._export(_Encoded(request, count))

    def _translate_data(self, data):
        return data.request if isinstance(data, _Encoded) else super()._translate_data(data)

    def _count_data(self, data) -> int:
        return data.count if isinstance(data, _Encoded) else super()._count_data(data)


class _Encoded:
    __slots__ = ("count", "request")

    def __init__(self, request: ExportTraceServiceRequest, count: int) -> None:
        self.request, self.count = request, count
