import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from invoctl.v1 import invocation_pb2 as _invocation_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class InvokeMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INVOKE_MODE_UNSPECIFIED: _ClassVar[InvokeMode]
    INVOKE_MODE_CALL: _ClassVar[InvokeMode]
    INVOKE_MODE_SEND: _ClassVar[InvokeMode]
INVOKE_MODE_UNSPECIFIED: InvokeMode
INVOKE_MODE_CALL: InvokeMode
INVOKE_MODE_SEND: InvokeMode

class InvokeRequest(_message.Message):
    __slots__ = ("target", "input", "headers", "idempotency_key", "delay", "mode")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TARGET_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    DELAY_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    target: _invocation_pb2.Target
    input: str
    headers: _containers.ScalarMap[str, str]
    idempotency_key: str
    delay: _duration_pb2.Duration
    mode: InvokeMode
    def __init__(self, target: _Optional[_Union[_invocation_pb2.Target, _Mapping]] = ..., input: _Optional[str] = ..., headers: _Optional[_Mapping[str, str]] = ..., idempotency_key: _Optional[str] = ..., delay: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., mode: _Optional[_Union[InvokeMode, str]] = ...) -> None: ...

class InvokeResponse(_message.Message):
    __slots__ = ("invocation_id", "invocation", "deduplicated")
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    INVOCATION_FIELD_NUMBER: _ClassVar[int]
    DEDUPLICATED_FIELD_NUMBER: _ClassVar[int]
    invocation_id: str
    invocation: _invocation_pb2.Invocation
    deduplicated: bool
    def __init__(self, invocation_id: _Optional[str] = ..., invocation: _Optional[_Union[_invocation_pb2.Invocation, _Mapping]] = ..., deduplicated: _Optional[bool] = ...) -> None: ...

class AttachRequest(_message.Message):
    __slots__ = ("invocation_id",)
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    invocation_id: str
    def __init__(self, invocation_id: _Optional[str] = ...) -> None: ...

class AttachResponse(_message.Message):
    __slots__ = ("invocation",)
    INVOCATION_FIELD_NUMBER: _ClassVar[int]
    invocation: _invocation_pb2.Invocation
    def __init__(self, invocation: _Optional[_Union[_invocation_pb2.Invocation, _Mapping]] = ...) -> None: ...
