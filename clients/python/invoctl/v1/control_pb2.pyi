from invoctl.v1 import invocation_pb2 as _invocation_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetInvocationRequest(_message.Message):
    __slots__ = ("invocation_id",)
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    invocation_id: str
    def __init__(self, invocation_id: _Optional[str] = ...) -> None: ...

class GetInvocationResponse(_message.Message):
    __slots__ = ("invocation",)
    INVOCATION_FIELD_NUMBER: _ClassVar[int]
    invocation: _invocation_pb2.Invocation
    def __init__(self, invocation: _Optional[_Union[_invocation_pb2.Invocation, _Mapping]] = ...) -> None: ...

class ListInvocationsRequest(_message.Message):
    __slots__ = ("service", "handler", "key", "states", "deployment_id", "page_size", "page_token")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    HANDLER_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    service: str
    handler: str
    key: str
    states: _containers.RepeatedScalarFieldContainer[_invocation_pb2.InvocationState]
    deployment_id: str
    page_size: int
    page_token: str
    def __init__(self, service: _Optional[str] = ..., handler: _Optional[str] = ..., key: _Optional[str] = ..., states: _Optional[_Iterable[_Union[_invocation_pb2.InvocationState, str]]] = ..., deployment_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListInvocationsResponse(_message.Message):
    __slots__ = ("invocations", "next_page_token")
    INVOCATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    invocations: _containers.RepeatedCompositeFieldContainer[_invocation_pb2.Invocation]
    next_page_token: str
    def __init__(self, invocations: _Optional[_Iterable[_Union[_invocation_pb2.Invocation, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetJournalRequest(_message.Message):
    __slots__ = ("invocation_id",)
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    invocation_id: str
    def __init__(self, invocation_id: _Optional[str] = ...) -> None: ...

class GetJournalResponse(_message.Message):
    __slots__ = ("invocation", "entries", "transitions")
    INVOCATION_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    TRANSITIONS_FIELD_NUMBER: _ClassVar[int]
    invocation: _invocation_pb2.Invocation
    entries: _containers.RepeatedCompositeFieldContainer[_invocation_pb2.JournalEntry]
    transitions: _containers.RepeatedCompositeFieldContainer[_invocation_pb2.Transition]
    def __init__(self, invocation: _Optional[_Union[_invocation_pb2.Invocation, _Mapping]] = ..., entries: _Optional[_Iterable[_Union[_invocation_pb2.JournalEntry, _Mapping]]] = ..., transitions: _Optional[_Iterable[_Union[_invocation_pb2.Transition, _Mapping]]] = ...) -> None: ...
