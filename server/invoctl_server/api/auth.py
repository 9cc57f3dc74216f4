"""Who may call what: bearer tokens, roles, and the interceptor that checks every RPC.

Tokens are configured as SHA-256 hashes with an identity and a role (a file, or the
INVOCTL_AUTH_TOKENS variable): the server never holds a token itself. A request presents
`authorization: Bearer <token>`; its hash is compared with every configured hash in
constant time. Without tokens configured, every caller is `anonymous` with every role
(the server then binds loopback only, see config.py).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import enum
import hashlib
import hmac
import inspect
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.message import Message
from opentelemetry import trace

from ..domain.errors import DomainError, PermissionDenied, Unauthenticated
from .errors import status_for
from .refusals import Recorder


class Role(enum.StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"
    WORKER = "worker"


@dataclasses.dataclass(frozen=True)
class Principal:
    identity: str
    role: Role | None  # None: no auth configured, everything allowed


ANONYMOUS = Principal("anonymous", None)
_current: contextvars.ContextVar[Principal] = contextvars.ContextVar(
    "invoctl_principal", default=ANONYMOUS
)


def principal() -> Principal:
    """Who made the request being served (ANONYMOUS without auth)."""
    return _current.get()


class InvalidTokenConfig(ValueError):
    """The token configuration cannot be used; the server refuses to start."""


_READ = frozenset({Role.VIEWER, Role.OPERATOR, Role.ADMIN})
_OPERATE = frozenset({Role.OPERATOR, Role.ADMIN})
_ADMIN = frozenset({Role.ADMIN})
_WORKER = frozenset({Role.WORKER})

_CONTROL = "/invoctl.v1.InvocationControl/"
# Full method name -> the roles that may call it. A method missing here is refused to
# everyone (fail closed), so a new RPC must be given its roles on purpose.
PERMISSIONS: dict[str, frozenset[Role]] = {
    **{
        _CONTROL + m: _READ
        for m in (
            "GetInvocation", "ListInvocations", "GetJournal", "ListAuditEntries",
            "WatchBulkOperation", "ListBulkOperations",
        )
    },
    **{
        _CONTROL + m: _OPERATE
        for m in (
            "CancelInvocation", "PauseInvocation", "ResumeInvocation",
            "RestartInvocationAsNew", "CancelInvocations", "PauseInvocations",
            "ResumeInvocations", "RestartInvocationsAsNew", "StopBulkOperation",
        )
    },
    **{
        _CONTROL + m: _ADMIN
        for m in (
            "KillInvocation", "PurgeInvocation", "PurgeJournal", "KillInvocations",
            "PurgeInvocations",
        )
    },
    "/invoctl.v1.Ingress/Invoke": _OPERATE,
    "/invoctl.v1.Ingress/Attach": _READ,
    "/invoctl.v1.Workers/RegisterDeployment": _WORKER,
    "/invoctl.v1.Workers/Connect": _WORKER,
    # A worker token registers deployments and runs attempts, and nothing else.
    "/invoctl.v1.Workers/ListDeployments": _READ,
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": _READ,
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo": _READ,
}  # fmt: skip
# Load balancers probe health without credentials.
PUBLIC = frozenset({"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"})


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclasses.dataclass(frozen=True)
class _Entry:
    digest: bytes
    principal: Principal


class Tokens:
    """The configured tokens (as hashes)."""

    def __init__(self, entries: Sequence[Mapping[str, Any]]) -> None:
        self._entries: list[_Entry] = []
        for n, e in enumerate(entries):
            try:
                identity, role, digest = str(e["identity"]), Role(e["role"]), e["sha256"]
                raw = bytes.fromhex(digest)
            except (KeyError, ValueError, TypeError) as exc:
                raise InvalidTokenConfig(
                    f"token {n}: needs identity, role (viewer, operator, admin or worker) and "
                    f"sha256 (64 hex digits): {exc}"
                ) from None
            if len(raw) != 32 or not identity:
                raise InvalidTokenConfig(f"token {n}: sha256 must be 64 hex digits")
            self._entries.append(_Entry(raw, Principal(identity, role)))

    @classmethod
    def load(cls, *, path: Path | None, inline: str | None) -> Tokens | None:
        """From a JSON file and/or JSON text: {"tokens": [{"identity", "role", "sha256"}]}.
        None when neither is given (auth off)."""
        entries: list[Mapping[str, Any]] = []
        for source, text in (
            (str(path), path.read_text() if path else None),
            ("INVOCTL_AUTH_TOKENS", inline),
        ):
            if not text:
                continue
            try:
                entries += json.loads(text)["tokens"]
            except (ValueError, KeyError, TypeError) as exc:
                raise InvalidTokenConfig(f"{source}: not {{'tokens': [...]}} JSON: {exc}") from None
        if path is None and not inline:
            return None
        if not entries:
            raise InvalidTokenConfig("auth is configured but no token is")
        return cls(entries)

    def principal_of(self, token: str) -> Principal | None:
        digest = hashlib.sha256(token.encode()).digest()
        found = None
        for entry in self._entries:  # every entry, always: the time does not tell which
            if hmac.compare_digest(entry.digest, digest):
                found = entry.principal
        return found

    def principal_of_sha256(self, hexdigest: str) -> Principal | None:
        """As principal_of, from the token's hash (the web console's session keeps it)."""
        try:
            digest = bytes.fromhex(hexdigest)
        except ValueError:
            return None
        found = None
        for entry in self._entries:
            if hmac.compare_digest(entry.digest, digest):
                found = entry.principal
        return found


def may(who: Principal, method: str) -> bool:
    """Whether `who` may call `method` (the console shows a button only then)."""
    return who.role is None or who.role in PERMISSIONS.get(method, frozenset())


def authorize(tokens: Tokens | None, method: str, metadata: Sequence[tuple[str, Any]]) -> Principal:
    """The caller of `method`, or Unauthenticated / PermissionDenied."""
    if tokens is None:
        return ANONYMOUS
    if method in PUBLIC:
        return ANONYMOUS
    header = next((v for k, v in metadata if k == "authorization"), None)
    who = authenticate(tokens, header)
    permit(who, method)
    return who


def authenticate(tokens: Tokens, header: Any) -> Principal:
    """Whose `authorization: Bearer <token>` header this is, or Unauthenticated."""
    if not isinstance(header, str) or not header.startswith("Bearer "):
        raise Unauthenticated("an authorization: Bearer <token> header is required")
    who = tokens.principal_of(header.removeprefix("Bearer ").strip())
    if who is None:
        raise Unauthenticated("the token is not known")
    return who


def permit(who: Principal, method: str) -> None:
    """PermissionDenied unless `who` may call `method` (a full gRPC method name; the HTTP
    API names the RPC each route runs)."""
    if who.role is None:  # no auth configured
        return
    allowed = PERMISSIONS.get(method, frozenset())
    if who.role not in allowed:
        raise PermissionDenied(
            f"{who.identity} ({who.role}) may not call {method}",
            identity=who.identity,
            role=str(who.role),
            method=method,
        )


@contextlib.contextmanager
def acting_as(who: Principal) -> Iterator[None]:
    """Serve the rest of a request as `who`: principal() and the span's enduser.id."""
    token = _enter(who)
    try:
        yield
    finally:
        _current.reset(token)


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Checks every call before its handler runs, and makes the caller's identity
    available to it (principal()) and to its span (enduser.id).

    It also serves streaming handlers as async generators, whichever way they are
    written (health's Watch writes with context.write): the tracing interceptor, which
    wraps this one, can only iterate over a generator.
    """

    def __init__(self, tokens: Tokens | None, recorder: Recorder | None = None) -> None:
        self._tokens = tokens
        # Operator requests refused here never reach the servicer that audits them.
        self._recorder = recorder

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        if handler is None:
            return None
        if self._tokens is None:  # auth off: principal() is ANONYMOUS
            if handler.unary_unary or handler.stream_unary:
                return handler
            return replace_behavior(handler, lambda behavior, _streaming: _as(ANONYMOUS, behavior))
        try:
            who = authorize(self._tokens, details.method, details.invocation_metadata or ())
        except DomainError as refused:
            method, recorder = details.method, self._recorder
            return replace_behavior(
                handler,
                lambda _b, streaming, r=refused: _refusing(r, streaming, method, recorder),
            )

        def run_as(behavior: Callable, streaming: bool) -> Callable:
            return _as(who, behavior) if streaming else _as_unary(who, behavior)

        return replace_behavior(handler, run_as)


def _enter(who: Principal) -> contextvars.Token:
    trace.get_current_span().set_attribute("enduser.id", who.identity)
    return _current.set(who)


def _as_unary(who: Principal, behavior: Callable) -> Callable:
    async def unary(request, context):
        token = _enter(who)
        try:
            return await behavior(request, context)
        finally:
            _current.reset(token)

    return unary


def _as(who: Principal, behavior: Callable) -> Callable:
    """A streaming `behavior` run as `who`, as an async generator."""

    async def streaming(request, context):
        token = _enter(who)
        try:
            async for item in streamed(behavior, request, context):
                yield item
        finally:
            _current.reset(token)

    return streaming


async def streamed(behavior: Callable, request, context):
    """A streaming behavior's messages, as an async generator whichever way it is written
    (health's Watch writes with context.write)."""
    if inspect.isasyncgenfunction(behavior):
        async for item in behavior(request, context):
            yield item
    else:
        await behavior(request, context)


def _refusing(
    refused: DomainError, streaming: bool, method: str, recorder: Recorder | None
) -> Callable:
    async def record(request) -> None:
        # A client-streaming request has no one message to read (and none is audited).
        if recorder is not None and isinstance(request, Message):
            await recorder.refused_message(method, request, refused)

    async def unary(request, context):
        await record(request)
        await context.abort_with_status(status_for(refused))

    async def stream(request, context):
        await record(request)
        await context.abort_with_status(status_for(refused))
        yield  # never reached: the abort raises; this makes it a generator

    return stream if streaming else unary


def replace_behavior(handler: grpc.RpcMethodHandler, wrap: Callable[[Callable, bool], Callable]):
    """The same handler with its behavior wrapped; `wrap(behavior, server_streaming)`."""
    types = (handler.request_deserializer, handler.response_serializer)
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(wrap(handler.unary_unary, False), *types)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(wrap(handler.unary_stream, True), *types)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(wrap(handler.stream_unary, False), *types)
    return grpc.stream_stream_rpc_method_handler(wrap(handler.stream_stream, True), *types)
