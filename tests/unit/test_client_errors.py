"""Decoding google.rpc.Status / ErrorInfo from failed calls, and InvocationFailed."""

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc.aio import AioRpcError, Metadata

from invoctl.client import InvocationFailed, InvoctlError, error_from_rpc_error, output_of
from invoctl.v1 import invocation_pb2


def _aio_error(
    code: grpc.StatusCode, details: str, status: status_pb2.Status | None
) -> AioRpcError:
    trailing = Metadata()
    if status is not None:
        trailing.add("grpc-status-details-bin", status.SerializeToString())
    return AioRpcError(code, Metadata(), trailing, details)


def _status(code: int, message: str, reason: str, **metadata: str) -> status_pb2.Status:
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.ErrorInfo(reason=reason, domain="invoctl", metadata=metadata))
    return status_pb2.Status(code=code, message=message, details=[detail])


def test_decodes_error_info_from_aio_error() -> None:
    message = "invocation inv_x not found"
    status = _status(code_pb2.NOT_FOUND, message, "INVOCATION_NOT_FOUND", invocation_id="inv_x")
    err = error_from_rpc_error(_aio_error(grpc.StatusCode.NOT_FOUND, message, status))

    assert err.code == grpc.StatusCode.NOT_FOUND
    assert err.reason == "INVOCATION_NOT_FOUND"
    assert err.message == message
    assert err.metadata == {"invocation_id": "inv_x"}
    assert err.status == status
    assert not err.retryable
    assert str(err) == "NOT_FOUND (INVOCATION_NOT_FOUND): invocation inv_x not found"


def test_keeps_details_even_when_status_disagrees_with_the_call() -> None:
    # rpc_status.from_call refuses this; the reason is still worth showing.
    status = _status(code_pb2.FAILED_PRECONDITION, "is completed", "INVALID_TRANSITION")
    err = error_from_rpc_error(
        _aio_error(grpc.StatusCode.FAILED_PRECONDITION, "other text", status)
    )
    assert err.reason == "INVALID_TRANSITION"
    assert err.message == "is completed"


def test_plain_grpc_failure_has_no_reason() -> None:
    err = error_from_rpc_error(_aio_error(grpc.StatusCode.UNAVAILABLE, "connection refused", None))
    assert (err.code, err.reason, err.metadata, err.status) == (
        grpc.StatusCode.UNAVAILABLE,
        "",
        {},
        None,
    )
    assert err.retryable
    assert str(err) == "UNAVAILABLE: connection refused"


@pytest.mark.parametrize(
    "code",
    [c for c in grpc.StatusCode if c not in (grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE)],
)
def test_only_unavailable_is_retryable(code: grpc.StatusCode) -> None:
    assert not InvoctlError(code).retryable


def _completed(outcome: int, **fields: object) -> invocation_pb2.Invocation:
    return invocation_pb2.Invocation(
        id="inv_1", state=invocation_pb2.INVOCATION_STATE_COMPLETED, outcome=outcome, **fields
    )


def test_output_of_decodes_json() -> None:
    assert output_of(_completed(invocation_pb2.OUTCOME_SUCCEEDED, output='{"a": [1]}')) == {
        "a": [1]
    }
    assert output_of(_completed(invocation_pb2.OUTCOME_SUCCEEDED)) is None


def test_output_of_raises_for_a_failed_outcome() -> None:
    failure = invocation_pb2.Failure(code="TERMINAL", message="out of stock")
    inv = _completed(invocation_pb2.OUTCOME_FAILED, failure=failure)
    with pytest.raises(InvocationFailed) as caught:
        output_of(inv)
    assert caught.value.invocation is inv
    assert caught.value.outcome == "failed"
    assert str(caught.value) == "invocation inv_1 failed: [TERMINAL] out of stock"


def test_invocation_failed_when_not_completed() -> None:
    inv = invocation_pb2.Invocation(id="inv_2", state=invocation_pb2.INVOCATION_STATE_PAUSED)
    assert str(InvocationFailed(inv)) == "invocation inv_2 did not complete: it is paused"
