"""How many gRPC calls the server takes at once, and a clear refusal beyond that.

gRPC's core queues the calls the application has not picked up yet and, past
`grpc.server.max_pending_requests` (1,000 by default), drops some of a burst with a bare
CANCELLED that the server never logs: 2 % of 1,500 concurrent unary calls on one channel
ended so. The server raises that queue above its own limit (`pending_options`), so that
every call reaches this interceptor, which serves up to --max-concurrent-rpcs at once
(streams included) and refuses the rest with RESOURCE_EXHAUSTED (SERVER_BUSY), which a
client can act on.
"""

from __future__ import annotations

from collections.abc import Callable

import grpc

from ..domain.errors import ServerBusy
from .auth import replace_behavior, streamed
from .errors import status_for


def pending_options(limit: int) -> list[tuple[str, int]]:
    """gRPC core's queue of calls not yet picked up, sized so that it never drops a call
    this interceptor would have served: a burst lands in one read before the server's
    loop picks its calls up, one at a time."""
    return [
        ("grpc.server.max_pending_requests", 2 * limit),
        ("grpc.server.max_pending_requests_hard_limit", 4 * limit),
    ]


class AdmissionInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._in_flight = 0

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        if handler is None:
            return None
        return replace_behavior(handler, self._admitting)

    def _busy(self) -> grpc.Status:
        return status_for(
            ServerBusy(
                f"the server is serving {self._limit} calls, its limit "
                "(--max-concurrent-rpcs): try again shortly",
                limit=str(self._limit),
            )
        )

    def _admitting(self, behavior: Callable, streaming: bool) -> Callable:
        # Counted while the behaviour runs, not from when the call came in: a call its
        # client cancels before it starts never holds a place.
        async def unary(request, context):
            if self._in_flight >= self._limit:
                await context.abort_with_status(self._busy())
            self._in_flight += 1
            try:
                return await behavior(request, context)
            finally:
                self._in_flight -= 1

        async def stream(request, context):
            if self._in_flight >= self._limit:
                await context.abort_with_status(self._busy())
            self._in_flight += 1
            try:
                async for item in streamed(behavior, request, context):
                    yield item
            finally:
                self._in_flight -= 1

        return stream if streaming else unary
