"""Tracing set-up from the standard OTEL_* environment variables.

OTEL_TRACES_EXPORTER: otlp (OTLP/gRPC to OTEL_EXPORTER_OTLP_ENDPOINT), console, or none
(the default here, so a server started without a collector does not log export errors).
OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES and OTEL_TRACES_SAMPLER(_ARG) are read by the
SDK itself when the provider is built below (tests/e2e/test_traces.py checks that they take
effect), and the OTEL_EXPORTER_OTLP_* and OTEL_BSP_* ones by the exporter and the batch
processor. The provider flushes its queue when the process exits.

With OTLP as the one exporter, a bulk page's transition spans are encoded by page_spans,
the same spans for a fraction of the CPU; every other span is the SDK's.
"""

from __future__ import annotations

import os

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

from . import page_spans

# The instrumentation scope of the server's spans (store/transition.py, runtime/bulk.py).
TRANSITIONS_SCOPE = "invoctl.server"


def recording() -> bool:
    """Whether spans are recorded at all: without an SDK tracer provider (no
    OTEL_TRACES_EXPORTER) the RPC interceptor and the HTTP middleware would spend server
    CPU on every request for spans nobody records, so they are not installed."""
    return isinstance(trace.get_tracer_provider(), TracerProvider)


def configure_from_env() -> TracerProvider | None:
    """Install a tracer provider with the exporters OTEL_TRACES_EXPORTER names."""
    names = [n.strip() for n in os.environ.get("OTEL_TRACES_EXPORTER", "none").split(",")]
    names = [n for n in names if n and n != "none"]
    if not names:
        return None
    os.environ.setdefault("OTEL_SERVICE_NAME", "invoctl-server")
    provider = TracerProvider(resource=Resource.create())
    for name in names:
        if name == "otlp":
            from ._otlp_exporter import Exporter

            exporter = Exporter()
            if names == ["otlp"]:
                # Bulk pages' transition spans, through the same exporter; added first,
                # so that it drains its queue before the batch processor shuts the
                # exporter down. With other exporters too, every span is the SDK's.
                pages = page_spans.PageSpans(provider, exporter, TRANSITIONS_SCOPE)
                provider.add_span_processor(pages)
                page_spans.install(pages)
            provider.add_span_processor(BatchSpanProcessor(exporter))
        elif name == "console":
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        else:
            raise ValueError(f"OTEL_TRACES_EXPORTER: unknown exporter {name!r}")
    trace.set_tracer_provider(provider)
    return provider
