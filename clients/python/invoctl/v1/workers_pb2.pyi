import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from invoctl.v1 import invocation_pb2 as _invocation_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ServiceKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SERVICE_KIND_UNSPECIFIED: _ClassVar[ServiceKind]
    SERVICE_KIND_SERVICE: _ClassVar[ServiceKind]
    SERVICE_KIND_VIRTUAL_OBJECT: _ClassVar[ServiceKind]

class OnMaxAttempts(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ON_MAX_ATTEMPTS_UNSPECIFIED: _ClassVar[OnMaxAttempts]
    ON_MAX_ATTEMPTS_PAUSE: _ClassVar[OnMaxAttempts]
    ON_MAX_ATTEMPTS_KILL: _ClassVar[OnMaxAttempts]

class SignalKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SIGNAL_KIND_UNSPECIFIED: _ClassVar[SignalKind]
    SIGNAL_KIND_PAUSE: _ClassVar[SignalKind]
    SIGNAL_KIND_KILL: _ClassVar[SignalKind]
    SIGNAL_KIND_CANCEL: _ClassVar[SignalKind]
SERVICE_KIND_UNSPECIFIED: ServiceKind
SERVICE_KIND_SERVICE: ServiceKind
SERVICE_KIND_VIRTUAL_OBJECT: ServiceKind
ON_MAX_ATTEMPTS_UNSPECIFIED: OnMaxAttempts
ON_MAX_ATTEMPTS_PAUSE: OnMaxAttempts
ON_MAX_ATTEMPTS_KILL: OnMaxAttempts
SIGNAL_KIND_UNSPECIFIED: SignalKind
SIGNAL_KIND_PAUSE: SignalKind
SIGNAL_KIND_KILL: SignalKind
SIGNAL_KIND_CANCEL: SignalKind

class RetryPolicy(_message.Message):
    __slots__ = ("initial_interval", "factor", "max_interval", "max_attempts", "on_max_attempts")
    INITIAL_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    FACTOR_FIELD_NUMBER: _ClassVar[int]
    MAX_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    ON_MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    initial_interval: _duration_pb2.Duration
    factor: float
    max_interval: _duration_pb2.Duration
    max_attempts: int
    on_max_attempts: OnMaxAttempts
    def __init__(self, initial_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., factor: _Optional[float] = ..., max_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_attempts: _Optional[int] = ..., on_max_attempts: _Optional[_Union[OnMaxAttempts, str]] = ...) -> None: ...

class HandlerDefinition(_message.Message):
    __slots__ = ("name", "shared", "retry_policy")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SHARED_FIELD_NUMBER: _ClassVar[int]
    RETRY_POLICY_FIELD_NUMBER: _ClassVar[int]
    name: str
    shared: bool
    retry_policy: RetryPolicy
    def __init__(self, name: _Optional[str] = ..., shared: _Optional[bool] = ..., retry_policy: _Optional[_Union[RetryPolicy, _Mapping]] = ...) -> None: ...

class ServiceDefinition(_message.Message):
    __slots__ = ("name", "kind", "handlers", "retry_policy", "retention")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    HANDLERS_FIELD_NUMBER: _ClassVar[int]
    RETRY_POLICY_FIELD_NUMBER: _ClassVar[int]
    RETENTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: ServiceKind
    handlers: _containers.RepeatedCompositeFieldContainer[HandlerDefinition]
    retry_policy: RetryPolicy
    retention: _duration_pb2.Duration
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[_Union[ServiceKind, str]] = ..., handlers: _Optional[_Iterable[_Union[HandlerDefinition, _Mapping]]] = ..., retry_policy: _Optional[_Union[RetryPolicy, _Mapping]] = ..., retention: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class Deployment(_message.Message):
    __slots__ = ("id", "services", "created_at", "identity", "sessions", "last_seen_at", "pinned_invocations")
    ID_FIELD_NUMBER: _ClassVar[int]
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_AT_FIELD_NUMBER: _ClassVar[int]
    PINNED_INVOCATIONS_FIELD_NUMBER: _ClassVar[int]
    id: str
    services: _containers.RepeatedCompositeFieldContainer[ServiceDefinition]
    created_at: _timestamp_pb2.Timestamp
    identity: str
    sessions: _containers.RepeatedCompositeFieldContainer[WorkerSession]
    last_seen_at: _timestamp_pb2.Timestamp
    pinned_invocations: int
    def __init__(self, id: _Optional[str] = ..., services: _Optional[_Iterable[_Union[ServiceDefinition, _Mapping]]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., identity: _Optional[str] = ..., sessions: _Optional[_Iterable[_Union[WorkerSession, _Mapping]]] = ..., last_seen_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., pinned_invocations: _Optional[int] = ...) -> None: ...

class WorkerSession(_message.Message):
    __slots__ = ("id", "worker_name", "server", "connected_at", "last_seen_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_NAME_FIELD_NUMBER: _ClassVar[int]
    SERVER_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    worker_name: str
    server: str
    connected_at: _timestamp_pb2.Timestamp
    last_seen_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., worker_name: _Optional[str] = ..., server: _Optional[str] = ..., connected_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_seen_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RegisterDeploymentRequest(_message.Message):
    __slots__ = ("services", "identity")
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    services: _containers.RepeatedCompositeFieldContainer[ServiceDefinition]
    identity: str
    def __init__(self, services: _Optional[_Iterable[_Union[ServiceDefinition, _Mapping]]] = ..., identity: _Optional[str] = ...) -> None: ...

class RegisterDeploymentResponse(_message.Message):
    __slots__ = ("deployment", "created")
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    deployment: Deployment
    created: bool
    def __init__(self, deployment: _Optional[_Union[Deployment, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class ListDeploymentsRequest(_message.Message):
    __slots__ = ("service",)
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    service: str
    def __init__(self, service: _Optional[str] = ...) -> None: ...

class ListDeploymentsResponse(_message.Message):
    __slots__ = ("deployments",)
    DEPLOYMENTS_FIELD_NUMBER: _ClassVar[int]
    deployments: _containers.RepeatedCompositeFieldContainer[Deployment]
    def __init__(self, deployments: _Optional[_Iterable[_Union[Deployment, _Mapping]]] = ...) -> None: ...

class ConnectRequest(_message.Message):
    __slots__ = ("seq", "hello", "heartbeat", "append", "suspend", "complete", "fail", "batch")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    HELLO_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    APPEND_FIELD_NUMBER: _ClassVar[int]
    SUSPEND_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    FAIL_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    seq: int
    hello: WorkerHello
    heartbeat: WorkerHeartbeat
    append: JournalAppend
    suspend: AttemptSuspend
    complete: AttemptComplete
    fail: AttemptFail
    batch: ConnectRequestBatch
    def __init__(self, seq: _Optional[int] = ..., hello: _Optional[_Union[WorkerHello, _Mapping]] = ..., heartbeat: _Optional[_Union[WorkerHeartbeat, _Mapping]] = ..., append: _Optional[_Union[JournalAppend, _Mapping]] = ..., suspend: _Optional[_Union[AttemptSuspend, _Mapping]] = ..., complete: _Optional[_Union[AttemptComplete, _Mapping]] = ..., fail: _Optional[_Union[AttemptFail, _Mapping]] = ..., batch: _Optional[_Union[ConnectRequestBatch, _Mapping]] = ...) -> None: ...

class ConnectRequestBatch(_message.Message):
    __slots__ = ("messages",)
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[ConnectRequest]
    def __init__(self, messages: _Optional[_Iterable[_Union[ConnectRequest, _Mapping]]] = ...) -> None: ...

class WorkerHello(_message.Message):
    __slots__ = ("deployment_id", "max_concurrency", "worker_name", "accepts_batches")
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    WORKER_NAME_FIELD_NUMBER: _ClassVar[int]
    ACCEPTS_BATCHES_FIELD_NUMBER: _ClassVar[int]
    deployment_id: str
    max_concurrency: int
    worker_name: str
    accepts_batches: bool
    def __init__(self, deployment_id: _Optional[str] = ..., max_concurrency: _Optional[int] = ..., worker_name: _Optional[str] = ..., accepts_batches: _Optional[bool] = ...) -> None: ...

class WorkerHeartbeat(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class JournalAppend(_message.Message):
    __slots__ = ("invocation_id", "attempt", "entries")
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    invocation_id: str
    attempt: int
    entries: _containers.RepeatedCompositeFieldContainer[_invocation_pb2.JournalEntry]
    def __init__(self, invocation_id: _Optional[str] = ..., attempt: _Optional[int] = ..., entries: _Optional[_Iterable[_Union[_invocation_pb2.JournalEntry, _Mapping]]] = ...) -> None: ...

class AttemptSuspend(_message.Message):
    __slots__ = ("invocation_id", "attempt", "waiting_on")
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    WAITING_ON_FIELD_NUMBER: _ClassVar[int]
    invocation_id: str
    attempt: int
    waiting_on: int
    def __init__(self, invocation_id: _Optional[str] = ..., attempt: _Optional[int] = ..., waiting_on: _Optional[int] = ...) -> None: ...

class AttemptComplete(_message.Message):
    __slots__ = ("invocation_id", "attempt", "output", "failure")
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    invocation_id: str
    attempt: int
    output: str
    failure: _invocation_pb2.Failure
    def __init__(self, invocation_id: _Optional[str] = ..., attempt: _Optional[int] = ..., output: _Optional[str] = ..., failure: _Optional[_Union[_invocation_pb2.Failure, _Mapping]] = ...) -> None: ...

class AttemptFail(_message.Message):
    __slots__ = ("invocation_id", "attempt", "failure")
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    invocation_id: str
    attempt: int
    failure: _invocation_pb2.Failure
    def __init__(self, invocation_id: _Optional[str] = ..., attempt: _Optional[int] = ..., failure: _Optional[_Union[_invocation_pb2.Failure, _Mapping]] = ...) -> None: ...

class ConnectResponse(_message.Message):
    __slots__ = ("welcome", "attempt", "ack", "signal", "batch")
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    welcome: WorkerWelcome
    attempt: AttemptStart
    ack: WorkerAck
    signal: AttemptSignal
    batch: ConnectResponseBatch
    def __init__(self, welcome: _Optional[_Union[WorkerWelcome, _Mapping]] = ..., attempt: _Optional[_Union[AttemptStart, _Mapping]] = ..., ack: _Optional[_Union[WorkerAck, _Mapping]] = ..., signal: _Optional[_Union[AttemptSignal, _Mapping]] = ..., batch: _Optional[_Union[ConnectResponseBatch, _Mapping]] = ...) -> None: ...

class ConnectResponseBatch(_message.Message):
    __slots__ = ("messages",)
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[ConnectResponse]
    def __init__(self, messages: _Optional[_Iterable[_Union[ConnectResponse, _Mapping]]] = ...) -> None: ...

class AttemptSignal(_message.Message):
    __slots__ = ("invocation_id", "attempt", "kind")
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    invocation_id: str
    attempt: int
    kind: SignalKind
    def __init__(self, invocation_id: _Optional[str] = ..., attempt: _Optional[int] = ..., kind: _Optional[_Union[SignalKind, str]] = ...) -> None: ...

class WorkerWelcome(_message.Message):
    __slots__ = ("session_id", "heartbeat_interval", "accepts_batches")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    ACCEPTS_BATCHES_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    heartbeat_interval: _duration_pb2.Duration
    accepts_batches: bool
    def __init__(self, session_id: _Optional[str] = ..., heartbeat_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., accepts_batches: _Optional[bool] = ...) -> None: ...

class AttemptStart(_message.Message):
    __slots__ = ("invocation_id", "attempt", "target", "input", "headers", "journal", "traceparent", "cancelled", "cancel_at_entry")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    JOURNAL_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    CANCEL_AT_ENTRY_FIELD_NUMBER: _ClassVar[int]
    invocation_id: str
    attempt: int
    target: _invocation_pb2.Target
    input: str
    headers: _containers.ScalarMap[str, str]
    journal: _containers.RepeatedCompositeFieldContainer[_invocation_pb2.JournalEntry]
    traceparent: str
    cancelled: bool
    cancel_at_entry: int
    def __init__(self, invocation_id: _Optional[str] = ..., attempt: _Optional[int] = ..., target: _Optional[_Union[_invocation_pb2.Target, _Mapping]] = ..., input: _Optional[str] = ..., headers: _Optional[_Mapping[str, str]] = ..., journal: _Optional[_Iterable[_Union[_invocation_pb2.JournalEntry, _Mapping]]] = ..., traceparent: _Optional[str] = ..., cancelled: _Optional[bool] = ..., cancel_at_entry: _Optional[int] = ...) -> None: ...

class WorkerAck(_message.Message):
    __slots__ = ("seq", "error_reason", "error_message", "entries")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    ERROR_REASON_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    seq: int
    error_reason: str
    error_message: str
    entries: _containers.RepeatedCompositeFieldContainer[_invocation_pb2.JournalEntry]
    def __init__(self, seq: _Optional[int] = ..., error_reason: _Optional[str] = ..., error_message: _Optional[str] = ..., entries: _Optional[_Iterable[_Union[_invocation_pb2.JournalEntry, _Mapping]]] = ...) -> None: ...
