"""A minimal OTLP/gRPC trace receiver on 127.0.0.1, for the bench: it accepts every
export and counts the spans (and those with `restate.invocation.id`) into a file.

    python bench/otlp_receiver.py COUNT_FILE      (prints "listening on 127.0.0.1:PORT")
"""

from __future__ import annotations

import sys
from concurrent import futures
from pathlib import Path

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, out: Path) -> None:
        self.out = out
        self.spans = 0
        self.invocation_spans = 0

    def Export(self, request, context):
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                for span in scope.spans:
                    self.spans += 1
                    if any(a.key == "restate.invocation.id" for a in span.attributes):
                        self.invocation_spans += 1
        self.out.write_text(f"{self.spans} {self.invocation_spans}\n")
        return trace_service_pb2.ExportTraceServiceResponse()


def main() -> None:
    out = Path(sys.argv[1])
    out.write_text("0 0\n")
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
