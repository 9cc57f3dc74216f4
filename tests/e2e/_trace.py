"""Finding the spans of an invocation among those the in-memory exporter holds."""

from __future__ import annotations

SERVER_SCOPE = "invoctl.server"  # the tracer transition.py emits with
SDK_SCOPE = "invoctl.sdk"  # the worker's


def spans_of(spans, inv_id: str) -> list:
    """Every finished span about `inv_id`, the server's and the worker's."""
    return [
        s for s in spans.get_finished_spans() if s.attributes.get("restate.invocation.id") == inv_id
    ]


def transition_spans(spans, inv_id: str, event: str | None = None) -> list:
    """The server's transition spans of `inv_id` (of one event, if given), oldest first."""
    found = [
        s
        for s in spans_of(spans, inv_id)
        if s.instrumentation_scope.name == SERVER_SCOPE
        and (event is None or s.attributes.get("invoctl.event") == event)
    ]
    return sorted(found, key=lambda s: s.start_time)


def ids(span_context) -> tuple[int, int]:
    """A span context's trace and span ID: a link read back from storage is `is_remote`,
    so span contexts themselves do not compare equal."""
    return span_context.trace_id, span_context.span_id


def linked(span) -> list[tuple[int, int]]:
    """The (trace ID, span ID) of each span `span` links to, in order."""
    return [ids(ln.context) for ln in span.links]
