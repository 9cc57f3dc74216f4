"""Conversions between database rows / domain objects and protos."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf import duration_pb2, timestamp_pb2

from invoctl.v1 import bulk_pb2 as bpb
from invoctl.v1 import control_pb2 as cpb
from invoctl.v1 import invocation_pb2 as pb
from invoctl.v1 import workers_pb2 as wpb

from ..domain.errors import InvalidArgument, InvalidJson, PayloadTooLarge, clip, echo
from ..domain.retry import OnMaxAttempts, RetryPolicy
from ..domain.states import Outcome, State
from ..store import deployments as dstore
from ..store.attempts import Claimed, EntryIn
from ..store.operations import Signal
from ..store.transition import target_of
from ..store.worker_sessions import WorkerSession

STATE_TO_PROTO = {s: getattr(pb, f"INVOCATION_STATE_{s.name}") for s in State}
STATE_FROM_PROTO = {v: k for k, v in STATE_TO_PROTO.items()}


def states(values) -> list[str]:
    """State filters of a request, as the database names them."""
    if any(v not in STATE_FROM_PROTO for v in values):
        raise InvalidArgument("states must be invocation states other than UNSPECIFIED")
    return [str(STATE_FROM_PROTO[s]) for s in values]


OUTCOME_TO_PROTO = {o: getattr(pb, f"OUTCOME_{o.name}") for o in Outcome}
OUTCOME_FROM_PROTO = {v: k for k, v in OUTCOME_TO_PROTO.items()}


def outcome(value: int) -> str:
    """An outcome filter of a request, as the database names it."""
    if value not in OUTCOME_FROM_PROTO:
        raise InvalidArgument("outcome must be an outcome other than UNSPECIFIED")
    return str(OUTCOME_FROM_PROTO[value])


def known_enum(value: int, enum_type: Any, field: str) -> int:
    """An enum field of a request, if the proto defines its value. Proto3 keeps numbers it
    does not know (a client can send 99), and one must never fall through to a default:
    INVALID_ARGUMENT."""
    if value not in enum_type.values():
        names = ", ".join(enum_type.keys())
        raise InvalidArgument(f"{field} {value} is not one of {names}", field=field)
    return value


def optional_datetime(msg: Any, field: str) -> datetime | None:
    """A Timestamp field of a request as a UTC datetime; None when unset."""
    if not msg.HasField(field):
        return None
    return getattr(msg, field).ToDatetime(tzinfo=UTC)


KIND_TO_PROTO = {
    "run": pb.JOURNAL_ENTRY_KIND_RUN,
    "sleep": pb.JOURNAL_ENTRY_KIND_SLEEP,
    "call": pb.JOURNAL_ENTRY_KIND_CALL,
    "send": pb.JOURNAL_ENTRY_KIND_SEND,
    "get_state": pb.JOURNAL_ENTRY_KIND_GET_STATE,
    "set_state": pb.JOURNAL_ENTRY_KIND_SET_STATE,
    "clear_state": pb.JOURNAL_ENTRY_KIND_CLEAR_STATE,
    "cancel": pb.JOURNAL_ENTRY_KIND_CANCEL,
}
KIND_FROM_PROTO = {v: k for k, v in KIND_TO_PROTO.items()}
SERVICE_KIND_FROM_PROTO = {
    wpb.SERVICE_KIND_SERVICE: "service",
    wpb.SERVICE_KIND_VIRTUAL_OBJECT: "virtual_object",
}
SERVICE_KIND_TO_PROTO = {v: k for k, v in SERVICE_KIND_FROM_PROTO.items()}


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ts(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    """The Timestamp of an aware datetime (the database's timestamptz): the arithmetic of
    Timestamp.FromDatetime, without its pure-Python conversions, which showed in the
    profile of every operator response (four timestamps each)."""
    if value is None:
        return None
    delta = value - _EPOCH
    return timestamp_pb2.Timestamp(
        seconds=delta.days * 86_400 + delta.seconds, nanos=delta.microseconds * 1000
    )


def failure(code: str | None, message: str | None) -> pb.Failure | None:
    if code is None and message is None:
        return None
    return pb.Failure(code=code or "", message=message or "")


def invocation(row: Mapping[str, Any]) -> pb.Invocation:
    state = State(row["state"])
    msg = pb.Invocation(
        id=row["id"],
        service=row["service"],
        handler=row["handler"],
        key=row["object_key"] or "",
        target=target_of(row),
        state=STATE_TO_PROTO[state],
        outcome=OUTCOME_TO_PROTO[Outcome(row["outcome"])] if row["outcome"] else 0,
        deployment_id=row["deployment_id"] or "",
        input=row["input"],
        headers=json.loads(row["headers"]) if row["headers"] else {},
        idempotency_key=row["idempotency_key"] or "",
        attempt_count=row["attempt"],
        last_failure=failure(row["last_failure_code"], row["last_failure_message"]),
        output=row["output"] or "",
        failure=failure(row["failure_code"], row["failure_message"]),
        caller_id=row["caller_id"] or "",
        restarted_from=row["restarted_from"] or "",
        journal_length=row["journal_length"],
        created_at=ts(row["created_at"]),
        modified_at=ts(row["modified_at"]),
        completed_at=ts(row["completed_at"]),
        cancelled_at=ts(row["cancelled_at"]),
    )
    if "worker_deployment_id" in row.keys() and (absent := no_worker(row)) is not None:
        msg.no_worker.CopyFrom(absent)
    if state == State.BACKING_OFF:
        msg.next_retry_at.CopyFrom(ts(row["due_at"]))
    elif state == State.SCHEDULED:
        msg.run_at.CopyFrom(ts(row["due_at"]))
    return msg


def journal_entry(row: Mapping[str, Any]) -> pb.JournalEntry:
    msg = pb.JournalEntry(
        index=row["idx"],
        kind=KIND_TO_PROTO[row["kind"]],
        name=row["name"],
        completed=row["completed"],
        value=row["value"] or "",
        failure=failure(row["failure_code"], row["failure_message"]),
        argument=row["argument"] or "",
        callee_invocation_id=row["callee_id"] or "",
        wake_at=ts(row["wake_at"]),
        delay_ms=row["delay_ms"],
        created_at=ts(row["created_at"]),
    )
    if row["target_service"]:
        msg.target.CopyFrom(
            pb.Target(
                service=row["target_service"],
                handler=row["target_handler"] or "",
                key=row["target_key"] or "",
            )
        )
    return msg


def transition(row: Mapping[str, Any]) -> pb.Transition:
    return pb.Transition(
        from_state=STATE_TO_PROTO[State(row["from_state"])] if row["from_state"] else 0,
        to_state=STATE_TO_PROTO[State(row["to_state"])],
        event=row["event"],
        actor=row["actor"],
        at=ts(row["at"]),
        trace_id=row["trace_id"] or "",
        span_id=row["span_id"] or "",
        attempt=row["attempt"],
        detail=row["detail"] or "",
    )


BULK_KIND_TO_PROTO = {
    "cancel": bpb.BULK_OPERATION_KIND_CANCEL,
    "kill": bpb.BULK_OPERATION_KIND_KILL,
    "pause": bpb.BULK_OPERATION_KIND_PAUSE,
    "resume": bpb.BULK_OPERATION_KIND_RESUME,
    "purge": bpb.BULK_OPERATION_KIND_PURGE,
    "restart": bpb.BULK_OPERATION_KIND_RESTART_AS_NEW,
}
BULK_STATE_TO_PROTO = {
    "running": bpb.BULK_OPERATION_STATE_RUNNING,
    "completed": bpb.BULK_OPERATION_STATE_COMPLETED,
    "stopped": bpb.BULK_OPERATION_STATE_STOPPED,
}
BULK_STATE_FROM_PROTO = {v: k for k, v in BULK_STATE_TO_PROTO.items()}


def bulk_progress(row: Mapping[str, Any]) -> bpb.BulkOperationProgress:
    """A full snapshot of a bulk operation; final once it no longer runs."""
    processed = row["succeeded"] + row["skipped"] + row["failed"]
    elapsed = (row["updated_at"] - row["created_at"]).total_seconds()
    return bpb.BulkOperationProgress(
        bulk_operation_id=row["id"],
        kind=BULK_KIND_TO_PROTO[row["kind"]],
        state=BULK_STATE_TO_PROTO[row["state"]],
        final=row["state"] != "running",
        matched=row["matched"],
        processed=processed,
        succeeded=row["succeeded"],
        skipped=row["skipped"],
        failed=row["failed"],
        failures=[bpb.BulkFailure(**f) for f in json.loads(row["failures"])],
        rate=processed / elapsed if elapsed > 0 else 0.0,
        selector=bpb.BulkSelector.FromString(row["selector"]),
        reason=row["reason"],
        identity=row["identity"],
        created_at=ts(row["created_at"]),
        updated_at=ts(row["updated_at"]),
        completed_at=ts(row["completed_at"]),
        max_per_second=row["max_per_second"],
    )


def audit_entry(row: Mapping[str, Any]) -> cpb.AuditEntry:
    return cpb.AuditEntry(
        id=row["id"],
        at=ts(row["at"]),
        identity=row["identity"],
        operation=row["operation"],
        invocation_id=row["invocation_id"],
        reason=row["reason"],
        request_id=row["request_id"] or "",
        result=row["result"],
        state_after=STATE_TO_PROTO[State(row["state_after"])] if row["state_after"] else 0,
        new_invocation_id=row["new_invocation_id"] or "",
        bulk_operation_id=row["bulk_operation_id"] or "",
    )


def entry_in(msg: pb.JournalEntry) -> EntryIn:
    kind = KIND_FROM_PROTO.get(msg.kind)
    if kind is None:
        raise InvalidArgument(f"journal entry {msg.index} has no kind")
    has_failure = msg.HasField("failure")
    return EntryIn(
        index=msg.index,
        kind=kind,
        name=msg.name,
        value=msg.value or None,
        failure_code=msg.failure.code if has_failure else None,
        failure_message=msg.failure.message if has_failure else None,
        target_service=msg.target.service if msg.HasField("target") else None,
        target_handler=msg.target.handler if msg.HasField("target") else None,
        target_key=(msg.target.key or None) if msg.HasField("target") else None,
        argument=msg.argument or None,
        delay_ms=msg.delay_ms,
    )


def traceparent(span_context: Any) -> str:
    if span_context is None or not span_context.is_valid:
        return ""
    flags = int(span_context.trace_flags)
    return f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{flags:02x}"


def attempt_start(claimed: Claimed) -> wpb.AttemptStart:
    row = claimed.row
    return wpb.AttemptStart(
        invocation_id=row["id"],
        attempt=row["attempt"],
        target=pb.Target(
            service=row["service"], handler=row["handler"], key=row["object_key"] or ""
        ),
        input=row["input"],
        headers=json.loads(row["headers"]) if row["headers"] else {},
        journal=[journal_entry(e) for e in claimed.journal],
        traceparent=traceparent(claimed.span_context),
        cancelled=row["cancel_pending"],
        # Woken from the entry it was suspended on when cancelled: its await raises it.
        cancel_at_entry=row["waiting_on"] if row["cancel_pending"] else None,
    )


def attempt_signal(signal: Signal) -> wpb.AttemptSignal:
    kind = {
        "pause": wpb.SIGNAL_KIND_PAUSE,
        "kill": wpb.SIGNAL_KIND_KILL,
        "cancel": wpb.SIGNAL_KIND_CANCEL,
    }[signal.kind]
    return wpb.AttemptSignal(invocation_id=signal.invocation_id, attempt=signal.attempt, kind=kind)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (RFC 8259 has no NaN or Infinity)")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999: a float no JSON encoder can write back
        raise ValueError(f"{clip(text, 40)} is out of the range of a JSON number (a double)")
    return value


def parse_json(text: str | bytes) -> Any:
    """JSON as RFC 8259 has it, which is what every SDK, client and the database can carry
    through: Python's parser also takes NaN, Infinity and numbers that overflow to
    infinity, which a handler then cannot return (json.dumps refuses them), so it retries
    for ever. ValueError for those, as for any syntax error; RecursionError when nested
    deeper than a parser follows."""
    return json.loads(text, parse_constant=_no_constant, parse_float=_finite)


def json_payload(text: str, *, field: str, limit: int) -> str:
    """Validate a JSON payload: size first (cheap), then syntax. Empty means null."""
    size = len(text.encode())
    if size > limit:
        raise PayloadTooLarge(
            f"{field} is {size} bytes; the limit is {limit}", field=field, limit=str(limit)
        )
    if not text:
        return "null"
    try:
        parse_json(text)
    except ValueError as exc:
        raise InvalidJson(f"{field} is not valid JSON: {exc}", field=field) from exc
    except RecursionError:
        # Deeper than a JSON parser (here, and in the worker that decodes it) can follow.
        raise InvalidJson(f"{field} is nested too deeply", field=field) from None
    return text


def duration(d: duration_pb2.Duration) -> timedelta:
    return d.ToTimedelta()


def duration_pb(ms: int) -> duration_pb2.Duration:
    out = duration_pb2.Duration()
    out.FromMilliseconds(ms)
    return out


def retry_policy(msg: wpb.RetryPolicy, base: RetryPolicy) -> RetryPolicy:
    """`base` with the fields `msg` sets (unset fields keep base's)."""
    if msg.factor < 0 or msg.max_attempts < 0:
        raise InvalidArgument("retry policy factor and max_attempts must not be negative")
    known_enum(msg.on_max_attempts, wpb.OnMaxAttempts, "on_max_attempts")
    on_max = {
        wpb.ON_MAX_ATTEMPTS_PAUSE: OnMaxAttempts.PAUSE,
        wpb.ON_MAX_ATTEMPTS_KILL: OnMaxAttempts.KILL,
    }.get(msg.on_max_attempts)
    return base.merged(
        initial_interval_ms=msg.initial_interval.ToMilliseconds()
        if msg.HasField("initial_interval")
        else None,
        factor=msg.factor or None,
        max_interval_ms=msg.max_interval.ToMilliseconds() if msg.HasField("max_interval") else None,
        max_attempts=msg.max_attempts or None,
        on_max_attempts=on_max,
    )


def retry_policy_pb(policy: RetryPolicy) -> wpb.RetryPolicy:
    return wpb.RetryPolicy(
        initial_interval=duration_pb(policy.initial_interval_ms),
        factor=policy.factor,
        max_interval=duration_pb(policy.max_interval_ms),
        max_attempts=policy.max_attempts,
        on_max_attempts=wpb.ON_MAX_ATTEMPTS_KILL
        if policy.on_max_attempts == OnMaxAttempts.KILL
        else wpb.ON_MAX_ATTEMPTS_PAUSE,
    )


def service_specs(services: list[wpb.ServiceDefinition]) -> list[dstore.ServiceSpec]:
    if not services:
        raise InvalidArgument("a deployment must serve at least one service")
    out, seen = [], set()
    for svc in services:
        kind = SERVICE_KIND_FROM_PROTO.get(svc.kind)
        if not svc.name or kind is None:
            raise InvalidArgument("every service needs a name and a kind", service=svc.name)
        if svc.name in seen:
            raise InvalidArgument(f"service {echo(svc.name)} is listed twice", service=svc.name)
        seen.add(svc.name)
        base = retry_policy(svc.retry_policy, RetryPolicy())
        names = [h.name for h in svc.handlers]
        if not names or "" in names or len(set(names)) != len(names):
            raise InvalidArgument(
                f"service {echo(svc.name)} needs distinct, non-empty handler names",
                service=svc.name,
            )
        handlers = tuple(
            dstore.HandlerSpec(
                h.name, h.shared and kind == "virtual_object", retry_policy(h.retry_policy, base)
            )
            for h in svc.handlers
        )
        retention = (
            svc.retention.ToMilliseconds()
            if svc.HasField("retention")
            else dstore.DEFAULT_RETENTION_MS
        )
        out.append(dstore.ServiceSpec(svc.name, kind, handlers, retention))
    return out


def deployment(
    dep: dstore.Deployment,
    *,
    sessions: Sequence[WorkerSession] = (),
    pinned: int = 0,
    live_since: datetime | None = None,
) -> wpb.Deployment:
    """A deployment; with `live_since` (ListDeployments), also its sessions heard of since
    then, when a worker was last seen and how many invocations are pinned to it."""
    msg = wpb.Deployment(
        id=dep.id,
        identity=dep.identity or "",
        created_at=ts(dep.created_at),
        services=[
            wpb.ServiceDefinition(
                name=s.name,
                kind=SERVICE_KIND_TO_PROTO[s.kind],
                retention=duration_pb(s.retention_ms),
                handlers=[
                    wpb.HandlerDefinition(
                        name=h.name, shared=h.shared, retry_policy=retry_policy_pb(h.retry_policy)
                    )
                    for h in s.handlers
                ],
            )
            for s in dep.services
        ],
    )
    if live_since is None:
        return msg
    msg.pinned_invocations = pinned
    seen = [t for t in (dep.last_seen_at, *(s.last_seen_at for s in sessions)) if t]
    if seen:
        msg.last_seen_at.CopyFrom(ts(max(seen)))
    msg.sessions.extend(
        wpb.WorkerSession(
            id=s.id,
            worker_name=s.worker_name,
            server=s.server,
            connected_at=ts(s.connected_at),
            last_seen_at=ts(s.last_seen_at),
        )
        for s in sessions
        if s.last_seen_at >= live_since
    )
    return msg


def no_worker(row: Mapping[str, Any]) -> pb.NoWorker | None:
    """A row of invocation_get_with_worker: whom the invocation waits for, if nobody is
    connected to run it."""
    if row["worker_deployment_id"] is None or row["worker_live"]:
        return None
    return pb.NoWorker(
        deployment_id=row["worker_deployment_id"], last_seen_at=ts(row["worker_last_seen"])
    )
