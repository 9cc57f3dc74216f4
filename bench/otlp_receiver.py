"""A minimal OTLP/gRPC trace receiver on 127.0.0.1, for the bench: it accepts every
export and counts the spans (and those with `restate.invocation.id`) into a file.

    python bench/otlp_receiver.py COUNT_FILE      (prints "listening on 127.0.0.1:PORT")
"""

from __future__ import annotations

import os
import sys
import threading
from concurrent import futures
from pathlib import Path

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, out: Path) -> None:
        self.out = out
        self.spans = 0
        self.invocation_spans = 0
        self._counting = threading.Lock()  # exports arrive on two threads

    def Export(self, request, context):
        spans = with_id = 0
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                for span in scope.spans:
                    spans += 1
                    if any(a.key == "restate.invocation.id" for a in span.attributes):
                        with_id += 1
        with self._counting:
            self.spans += spans
            self.invocation_spans += with_id
            _write(self.out, f"{self.spans} {self.invocation_spans}\n")
        return trace_service_pb2.ExportTraceServiceResponse()


def _write(out: Path, text: str) -> None:
    """Replace the file at once: the bench reads it while exports arrive."""
    partial = out.with_suffix(".partial")
    partial.write_text(text)
    os.replace(partial, out)


def main() -> None:
    out = Path(sys.argv[1])
    _write(out, "0 0\n")
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=2),
        options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)],
    )
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Receiver(out), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"listening on 127.0.0.1:{port}", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
