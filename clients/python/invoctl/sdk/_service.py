"""Services, virtual objects and their handlers, and their protocol definitions."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeVar, overload

from invoctl.v1 import workers_pb2

from ._durations import Interval, to_duration
from ._errors import TerminalError
from ._json import decode
from ._retry import RetryPolicy

HandlerFn = Callable[..., Awaitable[Any]]
F = TypeVar("F", bound=HandlerFn)

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def takes_argument(fn: Callable[..., Any]) -> bool:
    """Whether a handler is ``h(ctx, arg)`` (True) or ``h(ctx)`` (False).

    Raises TypeError for any other shape, at decoration time rather than at the first
    invocation.
    """
    parameters = inspect.signature(fn).parameters.values()
    positional = [p for p in parameters if p.kind in _POSITIONAL]
    variadic = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters)
    required_keywords = [
        p.name
        for p in parameters
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is inspect.Parameter.empty
    ]
    if required_keywords:
        raise TypeError(f"handler {fn.__name__} has required keyword-only parameters")
    if not positional and not variadic:
        raise TypeError(f"handler {fn.__name__} must take the context as first parameter")
    required_extra = [p for p in positional[2:] if p.default is inspect.Parameter.empty]
    if required_extra:
        raise TypeError(f"handler {fn.__name__} takes at most one argument besides ctx")
    return len(positional) >= 2 or variadic


def decode_input(text: str) -> Any:
    """Returns an invocation's input: JSON text, empty meaning None.

    Raises TerminalError for text that is not JSON: retrying cannot fix an input.
    """
    try:
        return decode(text)
    except ValueError as err:
        raise TerminalError(f"input is not valid JSON: {err}") from None


@dataclass(frozen=True)
class HandlerSpec:
    """One registered handler."""

    name: str
    fn: HandlerFn
    shared: bool
    retry_policy: RetryPolicy | None
    takes_arg: bool

    async def invoke(self, ctx: Any, arg: Any) -> Any:
        """Calls the handler with the context, and the argument if it takes one."""
        if self.takes_arg:
            return await self.fn(ctx, arg)
        return await self.fn(ctx)

    def to_proto(self) -> workers_pb2.HandlerDefinition:
        """Returns the handler's definition as sent in RegisterDeployment."""
        definition = workers_pb2.HandlerDefinition(name=self.name, shared=self.shared)
        if self.retry_policy is not None:
            definition.retry_policy.CopyFrom(self.retry_policy.to_proto())
        return definition


class _ServiceBase:
    """What services and virtual objects share: a name, handlers and policies."""

    kind: workers_pb2.ServiceKind

    def __init__(
        self,
        name: str,
        retry_policy: RetryPolicy | None = None,
        retention: Interval | None = None,
    ) -> None:
        if not name or "/" in name:
            raise ValueError(f"invalid service name {name!r}")
        if retention is not None:
            to_duration(retention, "retention")  # validate now, not at registration
        self.name = name
        self.retry_policy = retry_policy
        self.retention = retention
        self._handlers: dict[str, HandlerSpec] = {}

    @property
    def handlers(self) -> Mapping[str, HandlerSpec]:
        """The handlers by name, in declaration order."""
        return MappingProxyType(self._handlers)

    def _add(self, fn: F, name: str | None, shared: bool, retry_policy: RetryPolicy | None) -> F:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"handler {getattr(fn, '__name__', fn)!r} must be an async function")
        handler_name = name or fn.__name__
        if not handler_name or "/" in handler_name:
            raise ValueError(f"invalid handler name {handler_name!r}")
        if handler_name in self._handlers:
            raise ValueError(f"{self.name} already has a handler named {handler_name!r}")
        self._handlers[handler_name] = HandlerSpec(
            name=handler_name,
            fn=fn,
            shared=shared,
            retry_policy=retry_policy,
            takes_arg=takes_argument(fn),
        )
        return fn

    def to_proto(self, default_retry: RetryPolicy | None = None) -> workers_pb2.ServiceDefinition:
        """Returns the service's definition; ``default_retry`` applies if it has no policy."""
        if not self._handlers:
            raise ValueError(f"{self.name} has no handlers")
        definition = workers_pb2.ServiceDefinition(
            name=self.name,
            kind=self.kind,
            handlers=[h.to_proto() for h in self._handlers.values()],
        )
        policy = self.retry_policy or default_retry
        if policy is not None:
            definition.retry_policy.CopyFrom(policy.to_proto())
        if self.retention is not None:
            definition.retention.CopyFrom(to_duration(self.retention, "retention"))
        return definition

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, handlers={list(self._handlers)})"


class Service(_ServiceBase):
    """A stateless service: invocations address ``Service/handler``.

    ``retry_policy`` applies to every handler without its own; ``retention`` is how long
    completed invocations are kept (seconds or timedelta; the server's default is 24 h).
    Handlers are ``async def h(ctx: Context, arg)`` or ``async def h(ctx: Context)``.
    """

    kind = workers_pb2.SERVICE_KIND_SERVICE

    @overload
    def handler(self, fn: F, /) -> F: ...
    @overload
    def handler(
        self, *, name: str | None = None, retry_policy: RetryPolicy | None = None
    ) -> Callable[[F], F]: ...
    def handler(
        self,
        fn: F | None = None,
        /,
        *,
        name: str | None = None,
        retry_policy: RetryPolicy | None = None,
    ) -> F | Callable[[F], F]:
        """Registers a handler, named after the function unless ``name`` is given.

        Usable as ``@svc.handler()`` or ``@svc.handler``; returns the function unchanged.
        """
        if fn is not None:
            return self._add(fn, name, False, retry_policy)
        return lambda f: self._add(f, name, False, retry_policy)


class VirtualObject(_ServiceBase):
    """A keyed service with durable state: invocations address ``Object/key/handler``.

    Handlers are exclusive per key (one runs at a time; later ones wait) unless declared
    ``shared=True``: shared handlers run concurrently and may only read state. Handlers
    are ``async def h(ctx: ObjectContext, arg)`` or ``async def h(ctx: ObjectContext)``.
    """

    kind = workers_pb2.SERVICE_KIND_VIRTUAL_OBJECT

    @overload
    def handler(self, fn: F, /) -> F: ...
    @overload
    def handler(
        self,
        *,
        name: str | None = None,
        shared: bool = False,
        retry_policy: RetryPolicy | None = None,
    ) -> Callable[[F], F]: ...
    def handler(
        self,
        fn: F | None = None,
        /,
        *,
        name: str | None = None,
        shared: bool = False,
        retry_policy: RetryPolicy | None = None,
    ) -> F | Callable[[F], F]:
        """Registers a handler, exclusive per key unless ``shared``.

        Usable as ``@obj.handler()`` or ``@obj.handler``; returns the function unchanged.
        """
        if fn is not None:
            return self._add(fn, name, shared, retry_policy)
        return lambda f: self._add(f, name, shared, retry_policy)


AnyService = Service | VirtualObject
