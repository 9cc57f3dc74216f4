"""Runs one attempt: binds the input, calls the handler, reports how it ended."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.context import Context as TraceContext
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from invoctl.v1 import invocation_pb2, workers_pb2

from ._context import AttemptChannel, Context, ObjectContext
from ._errors import AttemptEnded, Suspended, TerminalError
from ._journal import Journal, target_path
from ._json import encode
from ._service import AnyService, HandlerSpec, VirtualObject, decode_input

logger = logging.getLogger("invoctl.sdk")
_tracer = trace.get_tracer("invoctl.sdk")

Failure = invocation_pb2.Failure


async def run_attempt(
    start: workers_pb2.AttemptStart,
    services: Mapping[str, AnyService],
    channel: AttemptChannel,
) -> None:
    """Runs the attempt to its end and reports it over ``channel``.

    Never raises for anything the handler does; an attempt the server ended (or a lost
    session) is logged and dropped. Cancellation propagates.
    """
    path = target_path(start.target)
    label = f"{start.invocation_id} attempt {start.attempt} ({path})"
    parent = _trace_parent(start.traceparent)
    attributes = {
        "restate.invocation.id": start.invocation_id,
        "invoctl.target": path,
        "invoctl.attempt": start.attempt,
        # Entries this attempt replays before it runs live (their steps have no spans).
        "invoctl.journal.replayed": len(start.journal),
    }
    # The transition that started the attempt is its parent and, explicitly, a link: a
    # back end that shows only one trace at a time still leads from here to it.
    started_by = trace.get_current_span(parent).get_span_context() if parent else None
    links = [trace.Link(started_by)] if started_by is not None and started_by.is_valid else None
    with _tracer.start_as_current_span(
        f"attempt {path}", context=parent, attributes=attributes, links=links
    ):
        try:
            await _run(start, services, channel, label)
        except Suspended as suspended:
            logger.debug("%s %s", label, suspended)
        except AttemptEnded as ended:
            logger.info("%s ended on this worker: %s", label, ended)


async def _run(
    start: workers_pb2.AttemptStart,
    services: Mapping[str, AnyService],
    channel: AttemptChannel,
    label: str,
) -> None:
    journal: Journal | None = None
    ctx: Context | None = None
    try:
        service, spec = _lookup(services, start.target)
        journal = Journal(start.journal)
        ctx = _new_context(start, service, spec, journal, channel)
        output: str | None = None
        failure: Failure | None = None
        try:
            arg = decode_input(start.input) if spec.takes_arg else None
            result = await spec.invoke(ctx, arg)
            journal.check_replayed()
            output = encode(result)
        except TerminalError as err:
            journal.check_replayed()
            logger.info("%s failed terminally: %s", label, err.message)
            failure = Failure(code=err.code, message=err.message)
        _check_not_ended(ctx)
        # Staged state writes and sends are persisted before the result, so a
        # completed invocation never loses them.
        await ctx._flush()
        if failure is not None:
            await channel.complete(failure=failure)
        else:
            await channel.complete(output=output)
    except AttemptEnded:
        raise
    except Exception as err:
        _check_not_ended(ctx)
        if journal is not None and journal.mismatch is not None:
            failure = Failure(
                code="NON_DETERMINISM", message=f"NonDeterminismError: {journal.mismatch}"
            )
        else:
            failure = Failure(code="RETRYABLE", message=f"{type(err).__name__}: {err}")
        logger.warning("%s failed, will be retried: %s", label, failure.message, exc_info=True)
        await channel.fail(failure)


def _check_not_ended(ctx: Context | None) -> None:
    # A handler that swallowed the end of its attempt must not report anything more.
    if ctx is not None and ctx._ended:
        raise AttemptEnded("the handler carried on after its attempt ended")


def _lookup(
    services: Mapping[str, AnyService], target: invocation_pb2.Target
) -> tuple[AnyService, HandlerSpec]:
    service = services.get(target.service)
    spec = service.handlers.get(target.handler) if service is not None else None
    if service is None or spec is None:
        raise LookupError(f"this worker does not serve {target_path(target)}")
    return service, spec


def _new_context(
    start: workers_pb2.AttemptStart,
    service: AnyService,
    spec: HandlerSpec,
    journal: Journal,
    channel: AttemptChannel,
) -> Context:
    common = {
        "invocation_id": start.invocation_id,
        "attempt": start.attempt,
        "headers": start.headers,
        "journal": journal,
        "channel": channel,
        "cancel_at": start.cancel_at_entry if start.HasField("cancel_at_entry") else None,
    }
    if isinstance(service, VirtualObject):
        return ObjectContext(key=start.target.key, shared=spec.shared, **common)
    return Context(**common)


def _trace_parent(traceparent: str) -> TraceContext | None:
    if not traceparent:
        return None
    return TraceContextTextMapPropagator().extract({"traceparent": traceparent})
