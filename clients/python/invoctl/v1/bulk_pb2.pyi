import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from invoctl.v1 import invocation_pb2 as _invocation_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BulkOperationKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BULK_OPERATION_KIND_UNSPECIFIED: _ClassVar[BulkOperationKind]
    BULK_OPERATION_KIND_CANCEL: _ClassVar[BulkOperationKind]
    BULK_OPERATION_KIND_KILL: _ClassVar[BulkOperationKind]
    BULK_OPERATION_KIND_PAUSE: _ClassVar[BulkOperationKind]
    BULK_OPERATION_KIND_RESUME: _ClassVar[BulkOperationKind]
    BULK_OPERATION_KIND_PURGE: _ClassVar[BulkOperationKind]
    BULK_OPERATION_KIND_RESTART_AS_NEW: _ClassVar[BulkOperationKind]

class BulkOperationState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BULK_OPERATION_STATE_UNSPECIFIED: _ClassVar[BulkOperationState]
    BULK_OPERATION_STATE_RUNNING: _ClassVar[BulkOperationState]
    BULK_OPERATION_STATE_COMPLETED: _ClassVar[BulkOperationState]
    BULK_OPERATION_STATE_STOPPED: _ClassVar[BulkOperationState]
    BULK_OPERATION_STATE_DRY_RUN: _ClassVar[BulkOperationState]
BULK_OPERATION_KIND_UNSPECIFIED: BulkOperationKind
BULK_OPERATION_KIND_CANCEL: BulkOperationKind
BULK_OPERATION_KIND_KILL: BulkOperationKind
BULK_OPERATION_KIND_PAUSE: BulkOperationKind
BULK_OPERATION_KIND_RESUME: BulkOperationKind
BULK_OPERATION_KIND_PURGE: BulkOperationKind
BULK_OPERATION_KIND_RESTART_AS_NEW: BulkOperationKind
BULK_OPERATION_STATE_UNSPECIFIED: BulkOperationState
BULK_OPERATION_STATE_RUNNING: BulkOperationState
BULK_OPERATION_STATE_COMPLETED: BulkOperationState
BULK_OPERATION_STATE_STOPPED: BulkOperationState
BULK_OPERATION_STATE_DRY_RUN: BulkOperationState

class BulkSelector(_message.Message):
    __slots__ = ("query", "service", "handler", "key", "states", "deployment_id", "created_before", "created_after", "invocation_ids")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    HANDLER_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AFTER_FIELD_NUMBER: _ClassVar[int]
    INVOCATION_IDS_FIELD_NUMBER: _ClassVar[int]
    query: str
    service: str
    handler: str
    key: str
    states: _containers.RepeatedScalarFieldContainer[_invocation_pb2.InvocationState]
    deployment_id: str
    created_before: _timestamp_pb2.Timestamp
    created_after: _timestamp_pb2.Timestamp
    invocation_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, query: _Optional[str] = ..., service: _Optional[str] = ..., handler: _Optional[str] = ..., key: _Optional[str] = ..., states: _Optional[_Iterable[_Union[_invocation_pb2.InvocationState, str]]] = ..., deployment_id: _Optional[str] = ..., created_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., invocation_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class BulkFailure(_message.Message):
    __slots__ = ("invocation_id", "reason", "message")
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    invocation_id: str
    reason: str
    message: str
    def __init__(self, invocation_id: _Optional[str] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class BulkOperationProgress(_message.Message):
    __slots__ = ("bulk_operation_id", "kind", "state", "final", "reattached", "matched", "processed", "succeeded", "skipped", "failed", "failures", "rate", "sample_invocation_ids", "selector", "reason", "identity", "created_at", "updated_at", "completed_at", "max_per_second", "matched_by_state", "would_act_on", "would_skip")
    BULK_OPERATION_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    REATTACHED_FIELD_NUMBER: _ClassVar[int]
    MATCHED_FIELD_NUMBER: _ClassVar[int]
    PROCESSED_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    RATE_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_INVOCATION_IDS_FIELD_NUMBER: _ClassVar[int]
    SELECTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    MAX_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    MATCHED_BY_STATE_FIELD_NUMBER: _ClassVar[int]
    WOULD_ACT_ON_FIELD_NUMBER: _ClassVar[int]
    WOULD_SKIP_FIELD_NUMBER: _ClassVar[int]
    bulk_operation_id: str
    kind: BulkOperationKind
    state: BulkOperationState
    final: bool
    reattached: bool
    matched: int
    processed: int
    succeeded: int
    skipped: int
    failed: int
    failures: _containers.RepeatedCompositeFieldContainer[BulkFailure]
    rate: float
    sample_invocation_ids: _containers.RepeatedScalarFieldContainer[str]
    selector: BulkSelector
    reason: str
    identity: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    completed_at: _timestamp_pb2.Timestamp
    max_per_second: float
    matched_by_state: _containers.RepeatedCompositeFieldContainer[BulkStateCount]
    would_act_on: int
    would_skip: int
    def __init__(self, bulk_operation_id: _Optional[str] = ..., kind: _Optional[_Union[BulkOperationKind, str]] = ..., state: _Optional[_Union[BulkOperationState, str]] = ..., final: _Optional[bool] = ..., reattached: _Optional[bool] = ..., matched: _Optional[int] = ..., processed: _Optional[int] = ..., succeeded: _Optional[int] = ..., skipped: _Optional[int] = ..., failed: _Optional[int] = ..., failures: _Optional[_Iterable[_Union[BulkFailure, _Mapping]]] = ..., rate: _Optional[float] = ..., sample_invocation_ids: _Optional[_Iterable[str]] = ..., selector: _Optional[_Union[BulkSelector, _Mapping]] = ..., reason: _Optional[str] = ..., identity: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., max_per_second: _Optional[float] = ..., matched_by_state: _Optional[_Iterable[_Union[BulkStateCount, _Mapping]]] = ..., would_act_on: _Optional[int] = ..., would_skip: _Optional[int] = ...) -> None: ...

class BulkStateCount(_message.Message):
    __slots__ = ("state", "matched", "would_act_on")
    STATE_FIELD_NUMBER: _ClassVar[int]
    MATCHED_FIELD_NUMBER: _ClassVar[int]
    WOULD_ACT_ON_FIELD_NUMBER: _ClassVar[int]
    state: _invocation_pb2.InvocationState
    matched: int
    would_act_on: int
    def __init__(self, state: _Optional[_Union[_invocation_pb2.InvocationState, str]] = ..., matched: _Optional[int] = ..., would_act_on: _Optional[int] = ...) -> None: ...

class CancelInvocationsRequest(_message.Message):
    __slots__ = ("selector", "reason", "request_id", "dry_run", "max_per_second")
    SELECTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    MAX_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    selector: BulkSelector
    reason: str
    request_id: str
    dry_run: bool
    max_per_second: float
    def __init__(self, selector: _Optional[_Union[BulkSelector, _Mapping]] = ..., reason: _Optional[str] = ..., request_id: _Optional[str] = ..., dry_run: _Optional[bool] = ..., max_per_second: _Optional[float] = ...) -> None: ...

class KillInvocationsRequest(_message.Message):
    __slots__ = ("selector", "reason", "request_id", "dry_run", "max_per_second")
    SELECTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    MAX_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    selector: BulkSelector
    reason: str
    request_id: str
    dry_run: bool
    max_per_second: float
    def __init__(self, selector: _Optional[_Union[BulkSelector, _Mapping]] = ..., reason: _Optional[str] = ..., request_id: _Optional[str] = ..., dry_run: _Optional[bool] = ..., max_per_second: _Optional[float] = ...) -> None: ...

class PauseInvocationsRequest(_message.Message):
    __slots__ = ("selector", "reason", "request_id", "dry_run", "max_per_second")
    SELECTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    MAX_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    selector: BulkSelector
    reason: str
    request_id: str
    dry_run: bool
    max_per_second: float
    def __init__(self, selector: _Optional[_Union[BulkSelector, _Mapping]] = ..., reason: _Optional[str] = ..., request_id: _Optional[str] = ..., dry_run: _Optional[bool] = ..., max_per_second: _Optional[float] = ...) -> None: ...

class ResumeInvocationsRequest(_message.Message):
    __slots__ = ("selector", "reason", "request_id", "dry_run", "max_per_second", "deployment")
    SELECTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    MAX_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    selector: BulkSelector
    reason: str
    request_id: str
    dry_run: bool
    max_per_second: float
    deployment: str
    def __init__(self, selector: _Optional[_Union[BulkSelector, _Mapping]] = ..., reason: _Optional[str] = ..., request_id: _Optional[str] = ..., dry_run: _Optional[bool] = ..., max_per_second: _Optional[float] = ..., deployment: _Optional[str] = ...) -> None: ...

class PurgeInvocationsRequest(_message.Message):
    __slots__ = ("selector", "reason", "request_id", "dry_run", "max_per_second")
    SELECTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    MAX_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    selector: BulkSelector
    reason: str
    request_id: str
    dry_run: bool
    max_per_second: float
    def __init__(self, selector: _Optional[_Union[BulkSelector, _Mapping]] = ..., reason: _Optional[str] = ..., request_id: _Optional[str] = ..., dry_run: _Optional[bool] = ..., max_per_second: _Optional[float] = ...) -> None: ...

class RestartInvocationsAsNewRequest(_message.Message):
    __slots__ = ("selector", "reason", "request_id", "dry_run", "max_per_second", "deployment")
    SELECTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    MAX_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    selector: BulkSelector
    reason: str
    request_id: str
    dry_run: bool
    max_per_second: float
    deployment: str
    def __init__(self, selector: _Optional[_Union[BulkSelector, _Mapping]] = ..., reason: _Optional[str] = ..., request_id: _Optional[str] = ..., dry_run: _Optional[bool] = ..., max_per_second: _Optional[float] = ..., deployment: _Optional[str] = ...) -> None: ...

class WatchBulkOperationRequest(_message.Message):
    __slots__ = ("bulk_operation_id",)
    BULK_OPERATION_ID_FIELD_NUMBER: _ClassVar[int]
    bulk_operation_id: str
    def __init__(self, bulk_operation_id: _Optional[str] = ...) -> None: ...

class ListBulkOperationsRequest(_message.Message):
    __slots__ = ("states", "page_size", "page_token")
    STATES_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    states: _containers.RepeatedScalarFieldContainer[BulkOperationState]
    page_size: int
    page_token: str
    def __init__(self, states: _Optional[_Iterable[_Union[BulkOperationState, str]]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListBulkOperationsResponse(_message.Message):
    __slots__ = ("bulk_operations", "next_page_token")
    BULK_OPERATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    bulk_operations: _containers.RepeatedCompositeFieldContainer[BulkOperationProgress]
    next_page_token: str
    def __init__(self, bulk_operations: _Optional[_Iterable[_Union[BulkOperationProgress, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class StopBulkOperationRequest(_message.Message):
    __slots__ = ("bulk_operation_id",)
    BULK_OPERATION_ID_FIELD_NUMBER: _ClassVar[int]
    bulk_operation_id: str
    def __init__(self, bulk_operation_id: _Optional[str] = ...) -> None: ...

class StopBulkOperationResponse(_message.Message):
    __slots__ = ("bulk_operation",)
    BULK_OPERATION_FIELD_NUMBER: _ClassVar[int]
    bulk_operation: BulkOperationProgress
    def __init__(self, bulk_operation: _Optional[_Union[BulkOperationProgress, _Mapping]] = ...) -> None: ...
