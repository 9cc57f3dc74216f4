import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class InvocationState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INVOCATION_STATE_UNSPECIFIED: _ClassVar[InvocationState]
    INVOCATION_STATE_PENDING: _ClassVar[InvocationState]
    INVOCATION_STATE_SCHEDULED: _ClassVar[InvocationState]
    INVOCATION_STATE_READY: _ClassVar[InvocationState]
    INVOCATION_STATE_RUNNING: _ClassVar[InvocationState]
    INVOCATION_STATE_BACKING_OFF: _ClassVar[InvocationState]
    INVOCATION_STATE_SUSPENDED: _ClassVar[InvocationState]
    INVOCATION_STATE_PAUSED: _ClassVar[InvocationState]
    INVOCATION_STATE_COMPLETED: _ClassVar[InvocationState]

class Outcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTCOME_UNSPECIFIED: _ClassVar[Outcome]
    OUTCOME_SUCCEEDED: _ClassVar[Outcome]
    OUTCOME_FAILED: _ClassVar[Outcome]
    OUTCOME_CANCELLED: _ClassVar[Outcome]
    OUTCOME_KILLED: _ClassVar[Outcome]

class JournalEntryKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOURNAL_ENTRY_KIND_UNSPECIFIED: _ClassVar[JournalEntryKind]
    JOURNAL_ENTRY_KIND_RUN: _ClassVar[JournalEntryKind]
    JOURNAL_ENTRY_KIND_SLEEP: _ClassVar[JournalEntryKind]
    JOURNAL_ENTRY_KIND_CALL: _ClassVar[JournalEntryKind]
    JOURNAL_ENTRY_KIND_SEND: _ClassVar[JournalEntryKind]
    JOURNAL_ENTRY_KIND_GET_STATE: _ClassVar[JournalEntryKind]
    JOURNAL_ENTRY_KIND_SET_STATE: _ClassVar[JournalEntryKind]
    JOURNAL_ENTRY_KIND_CLEAR_STATE: _ClassVar[JournalEntryKind]
    JOURNAL_ENTRY_KIND_CANCEL: _ClassVar[JournalEntryKind]
INVOCATION_STATE_UNSPECIFIED: InvocationState
INVOCATION_STATE_PENDING: InvocationState
INVOCATION_STATE_SCHEDULED: InvocationState
INVOCATION_STATE_READY: InvocationState
INVOCATION_STATE_RUNNING: InvocationState
INVOCATION_STATE_BACKING_OFF: InvocationState
INVOCATION_STATE_SUSPENDED: InvocationState
INVOCATION_STATE_PAUSED: InvocationState
INVOCATION_STATE_COMPLETED: InvocationState
OUTCOME_UNSPECIFIED: Outcome
OUTCOME_SUCCEEDED: Outcome
OUTCOME_FAILED: Outcome
OUTCOME_CANCELLED: Outcome
OUTCOME_KILLED: Outcome
JOURNAL_ENTRY_KIND_UNSPECIFIED: JournalEntryKind
JOURNAL_ENTRY_KIND_RUN: JournalEntryKind
JOURNAL_ENTRY_KIND_SLEEP: JournalEntryKind
JOURNAL_ENTRY_KIND_CALL: JournalEntryKind
JOURNAL_ENTRY_KIND_SEND: JournalEntryKind
JOURNAL_ENTRY_KIND_GET_STATE: JournalEntryKind
JOURNAL_ENTRY_KIND_SET_STATE: JournalEntryKind
JOURNAL_ENTRY_KIND_CLEAR_STATE: JournalEntryKind
JOURNAL_ENTRY_KIND_CANCEL: JournalEntryKind

class Failure(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class Invocation(_message.Message):
    __slots__ = ("id", "service", "handler", "key", "target", "state", "outcome", "deployment_id", "input", "headers", "idempotency_key", "attempt_count", "last_failure", "next_retry_at", "run_at", "output", "failure", "caller_id", "restarted_from", "journal_length", "created_at", "modified_at", "completed_at", "cancelled_at", "no_worker")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    HANDLER_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_COUNT_FIELD_NUMBER: _ClassVar[int]
    LAST_FAILURE_FIELD_NUMBER: _ClassVar[int]
    NEXT_RETRY_AT_FIELD_NUMBER: _ClassVar[int]
    RUN_AT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    CALLER_ID_FIELD_NUMBER: _ClassVar[int]
    RESTARTED_FROM_FIELD_NUMBER: _ClassVar[int]
    JOURNAL_LENGTH_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    MODIFIED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_AT_FIELD_NUMBER: _ClassVar[int]
    NO_WORKER_FIELD_NUMBER: _ClassVar[int]
    id: str
    service: str
    handler: str
    key: str
    target: str
    state: InvocationState
    outcome: Outcome
    deployment_id: str
    input: str
    headers: _containers.ScalarMap[str, str]
    idempotency_key: str
    attempt_count: int
    last_failure: Failure
    next_retry_at: _timestamp_pb2.Timestamp
    run_at: _timestamp_pb2.Timestamp
    output: str
    failure: Failure
    caller_id: str
    restarted_from: str
    journal_length: int
    created_at: _timestamp_pb2.Timestamp
    modified_at: _timestamp_pb2.Timestamp
    completed_at: _timestamp_pb2.Timestamp
    cancelled_at: _timestamp_pb2.Timestamp
    no_worker: NoWorker
    def __init__(self, id: _Optional[str] = ..., service: _Optional[str] = ..., handler: _Optional[str] = ..., key: _Optional[str] = ..., target: _Optional[str] = ..., state: _Optional[_Union[InvocationState, str]] = ..., outcome: _Optional[_Union[Outcome, str]] = ..., deployment_id: _Optional[str] = ..., input: _Optional[str] = ..., headers: _Optional[_Mapping[str, str]] = ..., idempotency_key: _Optional[str] = ..., attempt_count: _Optional[int] = ..., last_failure: _Optional[_Union[Failure, _Mapping]] = ..., next_retry_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., run_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., output: _Optional[str] = ..., failure: _Optional[_Union[Failure, _Mapping]] = ..., caller_id: _Optional[str] = ..., restarted_from: _Optional[str] = ..., journal_length: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., modified_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., cancelled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., no_worker: _Optional[_Union[NoWorker, _Mapping]] = ...) -> None: ...

class NoWorker(_message.Message):
    __slots__ = ("deployment_id", "last_seen_at")
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_AT_FIELD_NUMBER: _ClassVar[int]
    deployment_id: str
    last_seen_at: _timestamp_pb2.Timestamp
    def __init__(self, deployment_id: _Optional[str] = ..., last_seen_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Target(_message.Message):
    __slots__ = ("service", "handler", "key")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    HANDLER_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    service: str
    handler: str
    key: str
    def __init__(self, service: _Optional[str] = ..., handler: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class JournalEntry(_message.Message):
    __slots__ = ("index", "kind", "name", "completed", "value", "failure", "target", "argument", "callee_invocation_id", "wake_at", "delay_ms", "created_at")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    ARGUMENT_FIELD_NUMBER: _ClassVar[int]
    CALLEE_INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    WAKE_AT_FIELD_NUMBER: _ClassVar[int]
    DELAY_MS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    index: int
    kind: JournalEntryKind
    name: str
    completed: bool
    value: str
    failure: Failure
    target: Target
    argument: str
    callee_invocation_id: str
    wake_at: _timestamp_pb2.Timestamp
    delay_ms: int
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, index: _Optional[int] = ..., kind: _Optional[_Union[JournalEntryKind, str]] = ..., name: _Optional[str] = ..., completed: _Optional[bool] = ..., value: _Optional[str] = ..., failure: _Optional[_Union[Failure, _Mapping]] = ..., target: _Optional[_Union[Target, _Mapping]] = ..., argument: _Optional[str] = ..., callee_invocation_id: _Optional[str] = ..., wake_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., delay_ms: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Transition(_message.Message):
    __slots__ = ("from_state", "to_state", "event", "actor", "at", "trace_id", "span_id", "attempt", "detail")
    FROM_STATE_FIELD_NUMBER: _ClassVar[int]
    TO_STATE_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    SPAN_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    from_state: InvocationState
    to_state: InvocationState
    event: str
    actor: str
    at: _timestamp_pb2.Timestamp
    trace_id: str
    span_id: str
    attempt: int
    detail: str
    def __init__(self, from_state: _Optional[_Union[InvocationState, str]] = ..., to_state: _Optional[_Union[InvocationState, str]] = ..., event: _Optional[str] = ..., actor: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., trace_id: _Optional[str] = ..., span_id: _Optional[str] = ..., attempt: _Optional[int] = ..., detail: _Optional[str] = ...) -> None: ...
