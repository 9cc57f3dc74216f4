"""Errors a handler raises or sees, and the internal signals that end an attempt."""

from __future__ import annotations


class TerminalError(Exception):
    """Fails the invocation without retry.

    Raised by a handler (or by a ``ctx.run`` step, which journals it), the invocation
    completes with outcome failed and this ``code`` and ``message``. ``ctx.call`` raises
    it when the callee failed terminally.
    """

    def __init__(self, message: str, code: str = "TERMINAL") -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    def __repr__(self) -> str:
        return f"TerminalError({self.message!r}, code={self.code!r})"


CANCELLED = "CANCELLED"


class InvocationCancelled(TerminalError):
    """The invocation was cancelled: raised at the handler's next await after the cancel.

    A TerminalError with code CANCELLED. Left alone it ends the invocation with outcome
    cancelled; a handler may catch it to compensate (its ``ctx`` actions work as usual
    there) and then re-raise it. A cancellation reaches the leaves of a call tree first:
    a handler waiting in ``ctx.call`` gets it only once its callee ended (whatever that
    returned), so compensation flows back up the tree. ``ctx.call`` also raises it when
    the callee ended cancelled.
    """

    def __init__(self, message: str = "cancelled by an operator") -> None:
        super().__init__(message, CANCELLED)

    def __repr__(self) -> str:
        return f"InvocationCancelled({self.message!r})"


def terminal_error(code: str, message: str) -> TerminalError:
    """The error a journaled failure raises again: a cancellation keeps its class."""
    if code == CANCELLED:
        return InvocationCancelled(message)
    return TerminalError(message, code)


class NonDeterminismError(Exception):
    """The handler's actions no longer match its journal (its code changed).

    The attempt fails with code NON_DETERMINISM and is retried like any failure, so a
    fixed deployment can pick the invocation up. Catching it does not help: the context
    remembers the mismatch and fails the attempt anyway.
    """


class AttemptEnded(BaseException):
    """Unwinds a handler whose attempt is over on this worker.

    A BaseException so that a handler's ``except Exception`` does not swallow it.
    """


class Suspended(AttemptEnded):
    """The attempt suspended on a sleep or a call; a later attempt replays it."""


class AttemptAborted(AttemptEnded):
    """The server refused a message of the attempt (stale, fenced, no longer running)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}" if message else reason)
        self.reason = reason


class ConnectionLost(AttemptEnded):
    """The worker's session ended before the server answered."""
