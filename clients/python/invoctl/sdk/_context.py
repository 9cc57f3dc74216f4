"""The context a handler uses for durable actions: runs, sleeps, calls, state."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, NoReturn, Protocol, TypeVar

from opentelemetry import trace

from invoctl.v1 import invocation_pb2

from ._durations import Interval, to_millis
from ._errors import (
    CANCELLED,
    AttemptEnded,
    InvocationCancelled,
    Suspended,
    TerminalError,
    terminal_error,
)
from ._journal import CANCEL_AT_AWAIT, Journal, JournalEntry
from ._json import decode, encode

T = TypeVar("T")
_tracer = trace.get_tracer("invoctl.sdk")

_RUN = invocation_pb2.JOURNAL_ENTRY_KIND_RUN
_SLEEP = invocation_pb2.JOURNAL_ENTRY_KIND_SLEEP
_CALL = invocation_pb2.JOURNAL_ENTRY_KIND_CALL
_SEND = invocation_pb2.JOURNAL_ENTRY_KIND_SEND
_GET = invocation_pb2.JOURNAL_ENTRY_KIND_GET_STATE
_SET = invocation_pb2.JOURNAL_ENTRY_KIND_SET_STATE
_CLEAR = invocation_pb2.JOURNAL_ENTRY_KIND_CLEAR_STATE
_CANCEL = invocation_pb2.JOURNAL_ENTRY_KIND_CANCEL


class AttemptChannel(Protocol):
    """How an attempt talks to the server; every call waits for the server's ack.

    Each method raises AttemptAborted when the server refuses the message (the attempt
    is over there) and ConnectionLost when the session ends first.
    """

    async def append(self, entries: list[JournalEntry]) -> list[JournalEntry]:
        """Persists entries atomically; returns them as stored (server-filled fields)."""
        ...

    async def suspend(self, waiting_on: int) -> None:
        """Ends the attempt; the invocation waits for entry ``waiting_on`` to complete."""
        ...

    async def complete(
        self, *, output: str | None = None, failure: invocation_pb2.Failure | None = None
    ) -> None:
        """Ends the invocation with an output or a terminal failure."""
        ...

    async def fail(self, failure: invocation_pb2.Failure) -> None:
        """Ends the attempt with a retryable failure."""
        ...

    def check_running(self) -> None:
        """Raises AttemptAborted if an operator stopped the attempt (paused or killed it).

        Cheap and synchronous: the context calls it before every action, replayed ones
        included, so a stopped handler unwinds even while it only replays.
        """
        ...

    def cancel_requested(self) -> bool:
        """Whether the invocation was cancelled and its handler has not seen it yet (the
        attempt started so, or the server signalled it since)."""
        ...


def _target(service: str, handler: str, key: str | None) -> invocation_pb2.Target:
    return invocation_pb2.Target(service=service, handler=handler, key=key or "")


class Context:
    """What a service handler uses to act durably.

    Every action is journaled: on a retry the journal is replayed, so a ``run`` step
    runs at most once to completion, a sleep survives restarts, and a call is made once.
    Actions must be performed one at a time, in an order that depends only on the input
    and on the results of earlier actions (the replay check enforces this).
    """

    def __init__(
        self,
        *,
        invocation_id: str,
        attempt: int,
        headers: Mapping[str, str],
        journal: Journal,
        channel: AttemptChannel,
        cancel_at: int | None = None,
    ) -> None:
        self._invocation_id = invocation_id
        self._attempt = attempt
        self._headers = dict(headers)
        self._journal = journal
        self._channel = channel
        self._busy = False
        self._ended = False
        self._cancel_seen = False
        # The entry whose await raises the pending cancellation (AttemptStart.cancel_at_entry).
        self._cancel_at = cancel_at

    @property
    def invocation_id(self) -> str:
        """The invocation's ID (``inv_...``)."""
        return self._invocation_id

    @property
    def attempt(self) -> int:
        """The attempt number, 1 for the first."""
        return self._attempt

    @property
    def headers(self) -> Mapping[str, str]:
        """The headers given at invoke time."""
        return self._headers

    async def run(self, name: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Runs ``fn(*args)`` once and journals its JSON result under ``name``.

        ``fn`` may be sync or async; a sync ``fn`` runs on the event loop, so blocking
        work belongs in ``asyncio.to_thread`` inside it. Returns the result as JSON
        decodes it (the same on replay as live). A TerminalError raised by ``fn`` is
        journaled and re-raised, on replay too; any other exception fails the attempt,
        which is retried and runs ``fn`` again.

        A live step is traced as a span ``run <name>``, a child of the current span (the
        attempt's, or one the handler opened), from the call of ``fn`` until its result
        is durable; spans ``fn`` makes are its children. A replayed step runs nothing
        and makes no span: the attempt that ran it traced it.
        """
        with self._action():
            await self._cancel_point()
            journaled = self._journal.replay(JournalEntry(kind=_RUN, name=name))
            if journaled is not None:
                if journaled.HasField("failure"):
                    raise terminal_error(journaled.failure.code, journaled.failure.message)
                return decode(journaled.value)
            attributes = {
                "restate.invocation.id": self._invocation_id,
                "invoctl.step": name,
                "invoctl.attempt": self._attempt,
                "invoctl.journal.index": self._journal.next_index,
            }
            with _tracer.start_as_current_span(f"run {name}", attributes=attributes):
                try:
                    result = fn(*args)
                    if inspect.isawaitable(result):
                        result = await result
                except TerminalError as err:
                    failure = invocation_pb2.Failure(code=err.code, message=err.message)
                    self._journal.stage(
                        JournalEntry(kind=_RUN, name=name, completed=True, failure=failure)
                    )
                    await self._flush()
                    raise
                value = encode(result)
                self._journal.stage(JournalEntry(kind=_RUN, name=name, completed=True, value=value))
                # The result is durable before the handler sees it.
                await self._flush()
            return decode(value)

    async def sleep(self, delay: Interval) -> None:
        """Waits durably for ``delay`` (seconds or timedelta).

        The invocation suspends (no worker holds it) and a later attempt resumes here.
        Raises InvocationCancelled if the invocation is cancelled while it waits.
        """
        delay_ms = to_millis(delay, "delay")
        with self._action():
            await self._cancel_point()
            entry = await self._replay_or_append(JournalEntry(kind=_SLEEP, delay_ms=delay_ms))
            if not entry.completed:
                await self._suspend(entry.index)
            await self._cancel_at_await(entry)
            if entry.HasField("failure"):
                self._cancel_seen = self._cancel_seen or entry.failure.code == CANCELLED
                raise terminal_error(entry.failure.code, entry.failure.message)

    async def call(
        self, service: str, handler: str, arg: Any = None, key: str | None = None
    ) -> Any:
        """Calls another handler and returns its JSON result.

        ``key`` addresses a virtual object. The invocation suspends until the callee
        completes. Raises TerminalError (with the callee's failure code) if it failed,
        InvocationCancelled if it ended cancelled. If this invocation is cancelled while
        it waits, the cancellation reaches the callee first: the call still waits for it
        to end, then raises InvocationCancelled whatever it returned (the journal keeps
        what it returned).
        """
        target = _target(service, handler, key)
        argument = encode(arg)
        with self._action():
            await self._cancel_point()
            entry = await self._replay_or_append(
                JournalEntry(kind=_CALL, target=target, argument=argument)
            )
            if not entry.completed:
                await self._suspend(entry.index)
            await self._cancel_at_await(entry)
            if entry.HasField("failure"):
                self._cancel_seen = self._cancel_seen or entry.failure.code == CANCELLED
                raise terminal_error(entry.failure.code, entry.failure.message)
            return decode(entry.value)

    def send(
        self,
        service: str,
        handler: str,
        arg: Any = None,
        key: str | None = None,
        delay: Interval | None = None,
    ) -> None:
        """Invokes another handler one-way, optionally after ``delay``; not awaited.

        The send is journaled with the next awaited action (or when the handler ends),
        so it happens only if the handler gets that far. The new invocation is detached:
        cancelling or killing this one does not touch it.
        """
        entry = JournalEntry(
            kind=_SEND,
            target=_target(service, handler, key),
            argument=encode(arg),
            delay_ms=0 if delay is None else to_millis(delay, "delay"),
        )
        with self._action():
            self._replay_or_stage(entry)

    async def _cancel_point(self) -> None:
        """Raises InvocationCancelled where the handler sees its cancellation: on replay,
        where an earlier attempt journaled it; live, at the first await after the cancel
        arrived, which journals it there first. Delivered once: compensation that follows
        runs normally."""
        journaled = self._journal.replay_cancel()
        if journaled is not None:
            self._cancel_seen = True
            raise InvocationCancelled(journaled.failure.message or "cancelled by an operator")
        if self._journal.replaying or self._cancel_seen or not self._channel.cancel_requested():
            return
        self._cancel_seen = True
        cancelled = InvocationCancelled()
        failure = invocation_pb2.Failure(code=cancelled.code, message=cancelled.message)
        self._journal.stage(JournalEntry(kind=_CANCEL, completed=True, failure=failure))
        await self._flush()
        raise cancelled

    async def _cancel_at_await(self, entry: JournalEntry) -> None:
        """Raises InvocationCancelled at the await of ``entry``, a call or sleep with its
        result, in place of that result: where the invocation was suspended on it when
        the cancel came (a call waits for its callee, which the cancel reached first). On
        replay, where a cancel entry named CANCEL_AT_AWAIT follows it; live, where the
        attempt start names it, which journals that entry first."""
        journaled = self._journal.replay_cancel(at_await=True)
        if journaled is not None:
            self._cancel_seen = True
            raise InvocationCancelled(journaled.failure.message or "cancelled by an operator")
        if (
            self._journal.replaying
            or self._cancel_seen
            or entry.index != self._cancel_at
            or not self._channel.cancel_requested()
        ):
            return
        self._cancel_seen = True
        cancelled = InvocationCancelled()
        failure = invocation_pb2.Failure(code=cancelled.code, message=cancelled.message)
        self._journal.stage(
            JournalEntry(kind=_CANCEL, name=CANCEL_AT_AWAIT, completed=True, failure=failure)
        )
        await self._flush()
        raise cancelled

    async def _replay_or_append(self, entry: JournalEntry) -> JournalEntry:
        """The journaled entry of this action, or ``entry`` persisted live, as stored."""
        journaled = self._journal.replay(entry)
        if journaled is not None:
            return journaled
        index = self._journal.stage(entry)
        return (await self._flush()).get(index, entry)

    def _replay_or_stage(self, entry: JournalEntry) -> None:
        if self._journal.replay(entry) is None:
            self._journal.stage(entry)

    async def _flush(self) -> dict[int, JournalEntry]:
        """Persists the staged entries in one append; returns them as stored, by index."""
        entries = self._journal.take_pending()
        if not entries:
            return {}
        stored = await self._ended_on_abort(self._channel.append(entries))
        return {e.index: e for e in stored}

    async def _suspend(self, waiting_on: int) -> NoReturn:
        await self._flush()
        await self._ended_on_abort(self._channel.suspend(waiting_on))
        self._ended = True
        raise Suspended(f"suspended on journal entry {waiting_on}")

    async def _ended_on_abort(self, awaitable: Awaitable[T]) -> T:
        # Whatever ended the attempt on the server ends it here too, even if the
        # handler swallows the signal and carries on.
        try:
            return await awaitable
        except AttemptEnded:
            self._ended = True
            raise

    @contextmanager
    def _action(self) -> Iterator[None]:
        """Marks the context busy for the length of one action."""
        if self._ended:
            raise AttemptEnded("the attempt is over")
        try:
            self._channel.check_running()
        except AttemptEnded:
            self._ended = True
            raise
        if self._busy:
            raise RuntimeError("context actions must run one at a time, and not inside ctx.run")
        self._busy = True
        try:
            yield
        finally:
            self._busy = False


class ObjectContext(Context):
    """What a virtual-object handler uses: a Context plus the key's durable state.

    State values are JSON. ``set`` and ``clear`` are not awaited: they are journaled
    with the next awaited action or when the handler ends, atomically with it.
    """

    def __init__(self, *, key: str, shared: bool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._key = key
        self._shared = shared

    @property
    def key(self) -> str:
        """The object key this invocation addresses."""
        return self._key

    async def get(self, name: str) -> Any:
        """Returns the state value ``name``, or None when it is not set."""
        with self._action():
            await self._cancel_point()
            entry = await self._replay_or_append(JournalEntry(kind=_GET, name=name))
            return decode(entry.value)

    def set(self, name: str, value: Any) -> None:
        """Sets the state value ``name`` to ``value`` (JSON-serializable)."""
        self._check_writable("set")
        entry = JournalEntry(kind=_SET, name=name, value=encode(value))
        with self._action():
            self._replay_or_stage(entry)

    def clear(self, name: str) -> None:
        """Removes the state value ``name``."""
        self._check_writable("clear")
        with self._action():
            self._replay_or_stage(JournalEntry(kind=_CLEAR, name=name))

    def _check_writable(self, method: str) -> None:
        if self._shared:
            raise RuntimeError(f"ctx.{method} is not allowed in a shared handler")
