"""The client's exceptions, and decoding of the server's rich error details.

The server answers every failed RPC with a `google.rpc.Status` in the
`grpc-status-details-bin` trailer, carrying a `google.rpc.ErrorInfo` whose reason is
a stable UPPER_SNAKE string (DESIGN.md section 4). Callers branch on `reason`, never
on the human-readable message.
"""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from invoctl.v1 import invocation_pb2

from ._names import outcome_name, state_name

__all__ = ["InvocationFailed", "InvoctlError", "error_from_rpc_error"]

_DETAILS_KEY = "grpc-status-details-bin"


class InvoctlError(Exception):
    """A failed RPC, decoded.

    Attributes:
        code: the gRPC status code.
        reason: the stable `ErrorInfo.reason` (e.g. `INVOCATION_NOT_FOUND`); "" when the
            failure did not come from invoctl's servicers (a proxy, a dead connection).
        message: the human-readable message.
        metadata: `ErrorInfo.metadata`, e.g. the invocation ID and its current state.
        status: the full `google.rpc.Status` when the server sent one, for other details.
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        reason: str = "",
        message: str = "",
        metadata: dict[str, str] | None = None,
        status: status_pb2.Status | None = None,
    ) -> None:
        self.code = code
        self.reason = reason
        self.message = message
        self.metadata = dict(metadata or {})
        self.status = status
        super().__init__(str(self))

    @property
    def retryable(self) -> bool:
        """Whether retrying the same request may succeed: only for UNAVAILABLE.

        Every other code is an answer about the request itself (not found, wrong state,
        bad argument), which a retry cannot change.
        """
        return self.code == grpc.StatusCode.UNAVAILABLE

    def __str__(self) -> str:
        head = f"{self.code.name} ({self.reason})" if self.reason else self.code.name
        return f"{head}: {self.message}" if self.message else head

    def __repr__(self) -> str:
        return (
            f"InvoctlError(code={self.code.name}, reason={self.reason!r}, "
            f"message={self.message!r}, metadata={self.metadata!r})"
        )


def _rich_status(err: grpc.RpcError) -> status_pb2.Status | None:
    """The `google.rpc.Status` of a failed call, if the server sent one.

    `rpc_status.from_call` works for `grpc.aio.AioRpcError` too: its accessors are
    plain methods, since the status is final once the error is raised.
    """
    try:
        return rpc_status.from_call(err)  # type: ignore[arg-type]
    except ValueError:
        # The helper refuses a Status whose code or message disagree with the call's.
        # The details are still the best explanation we have, so decode them anyway.
        for key, value in err.trailing_metadata() or ():  # type: ignore[attr-defined]
            if key == _DETAILS_KEY:
                return status_pb2.Status.FromString(value)
        return None


def error_from_rpc_error(err: grpc.RpcError) -> InvoctlError:
    """Decode a failed call (`grpc.RpcError` or `grpc.aio.AioRpcError`) into an InvoctlError."""
    code: grpc.StatusCode = err.code()  # type: ignore[attr-defined]
    message: str = err.details() or ""  # type: ignore[attr-defined]
    status = _rich_status(err)
    reason = ""
    metadata: dict[str, str] = {}
    if status is not None:
        message = status.message or message
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason, metadata = info.reason, dict(info.metadata)
                break
    return InvoctlError(code, reason, message, metadata, status)


class InvocationFailed(Exception):
    """A call completed with an outcome other than succeeded.

    Attributes:
        invocation: the completed `Invocation`, with its outcome and failure.
    """

    def __init__(self, invocation: invocation_pb2.Invocation) -> None:
        self.invocation = invocation
        super().__init__(str(self))

    @property
    def outcome(self) -> str:
        """The outcome's operator-facing name: `failed`, `cancelled` or `killed`."""
        return outcome_name(self.invocation.outcome)

    @property
    def failure(self) -> invocation_pb2.Failure:
        """The terminal failure (empty when the server recorded none)."""
        return self.invocation.failure

    def __str__(self) -> str:
        inv = self.invocation
        if inv.state != invocation_pb2.INVOCATION_STATE_COMPLETED:
            # The contract says a call returns completed; say so plainly if it did not.
            return f"invocation {inv.id} did not complete: it is {state_name(inv.state)}"
        text = f"invocation {inv.id} {self.outcome}"
        if inv.failure.code or inv.failure.message:
            code = f"[{inv.failure.code}] " if inv.failure.code else ""
            text += f": {code}{inv.failure.message}"
        return text
