"""Server CPU per transition span, the SDK's and a bulk page's (page_spans), from start to
export to the bench's OTLP receiver in another process: pages of 1,000 spans like a bulk
cancel's, with the attributes and link transition.py gives them.

    python -m bench.spans [N]      (not part of `make bench`: a few seconds, no database)
"""

from __future__ import annotations

import gc
import os
import sys
import tempfile
import time
from pathlib import Path

from . import _procs
from .__main__ import OTLP_ENV

PAGE = 1000


def _received(count_file: Path, at_least: int) -> None:
    deadline = time.monotonic() + 60
    while int(count_file.read_text().split()[1]) < at_least:
        if time.monotonic() > deadline:
            raise SystemExit("the receiver did not get every span")
        time.sleep(0.05)  # polling the receiver's count file


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    count_file = Path(tempfile.mkdtemp(prefix="invoctl-otlp-")) / "spans"
    with _procs.otlp_receiver(count_file) as endpoint:
        os.environ.update(OTLP_ENV, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint)
        from opentelemetry import trace

        from invoctl_server import page_spans, telemetry

        provider = telemetry.configure_from_env()
        assert provider is not None
        tracer = trace.get_tracer(telemetry.TRANSITIONS_SCOPE)
        page = trace.set_span_in_context(tracer.start_span("bulk cancel page"))
        links = [
            [trace.Link(trace.SpanContext(1 << 64 | i, i + 1, True, trace.TraceFlags(1)))]
            for i in range(n)
        ]
        attributes = [
            {
                "restate.invocation.id": f"inv_{i:022d}",
                "restate.invocation.target": "BulkBench/h0",
                "invoctl.state.from": "suspended",
                "invoctl.state.to": "ready",
                "invoctl.event": "cancelled",
                "invoctl.actor": "bulk:bulk_0000000000000000000000",
            }
            for i in range(n)
        ]
        with page_spans.page():
            pages = page_spans.current()
        assert pages is not None
        sent = 0
        for label, start in (("SDK", tracer.start_span), ("page_spans", pages.start_span)):
            for _ in range(3):
                gc.collect()
                cpu = time.process_time()
                for p in range(0, n, PAGE):
                    spans = [
                        start("invocation cancelled", context=page, links=links[i],
                              attributes=attributes[i])
                        for i in range(p, min(n, p + PAGE))
                    ]  # fmt: skip
                    for span in spans:
                        span.end()
                provider.force_flush()
                cpu = time.process_time() - cpu
                sent += n
                _received(count_file, sent)
                print(f"{label}: {cpu / n * 1e6:.1f} µs of CPU a span, started to exported")
        provider.shutdown()


if __name__ == "__main__":
    main()
