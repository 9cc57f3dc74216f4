"""A bulk operation's progress as server-sent events (sse-starlette).

Every event is a full snapshot (`event: progress`, the BulkOperationProgress as proto3
JSON in `data`), sent as WatchBulkOperation sends them: at once, after every page, and at
least every 0.1 s; the stream ends after the final one. An event's ID is its processed
count, with `.final` on the last: a client that reconnects with `Last-Event-ID` (as
EventSource does by itself) is not sent the snapshot it has again, and one that has the
final snapshot is answered 204, which tells EventSource to stop reconnecting.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.responses import Response

from invoctl.v1 import bulk_pb2 as bpb

from . import bodies
from .route import Call

log = logging.getLogger("invoctl.http")

# How soon EventSource reconnects after a dropped stream (milliseconds).
RETRY_MS = 1000


def event_id(progress: bpb.BulkOperationProgress) -> str:
    return f"{progress.processed}.final" if progress.final else str(progress.processed)


async def progress_stream(call: Call, stream: AsyncIterator[bpb.BulkOperationProgress]) -> Response:
    """The SSE response; errors before the first snapshot (not found) are answered as
    errors, since no event has gone out yet."""
    try:
        first = await anext(stream)
    except BaseException:
        await stream.aclose()
        raise
    seen = call.request.headers.get("last-event-id")
    if first.final and seen == event_id(first):
        await stream.aclose()
        return Response(status_code=204)

    async def events() -> AsyncIterator[ServerSentEvent]:
        progress: bpb.BulkOperationProgress | None = first
        try:
            while progress is not None:
                if event_id(progress) != seen:  # the one a reconnecting client has
                    yield ServerSentEvent(
                        data=json.dumps(bodies.to_dict(progress), separators=(",", ":")),
                        event="progress",
                        id=event_id(progress),
                        retry=RETRY_MS,
                    )
                if progress.final:
                    return
                progress = await _next_unless_stopping(call, stream)
        except Exception as exc:  # the database went away mid-stream, say
            # The status went out with the first event: end the stream, and the client
            # reconnects (EventSource does by itself) and gets an error status then.
            log.warning("progress stream ended early: %s", type(exc).__name__)
        finally:
            await stream.aclose()

    return EventSourceResponse(events(), ping=15)


async def _next_unless_stopping(
    call: Call, stream: AsyncIterator[bpb.BulkOperationProgress]
) -> bpb.BulkOperationProgress | None:
    """The next snapshot; None when the server stops (the stream ends, and the client
    reconnects to another server or to this one once it is back)."""
    step = asyncio.ensure_future(anext(stream))
    stopping = asyncio.ensure_future(call.api.stopping.wait())
    try:
        await asyncio.wait({step, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if not step.done():
        step.cancel()
        with contextlib.suppress(BaseException):
            await step
        return None
    return step.result()
