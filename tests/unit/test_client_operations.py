"""The operator methods of Client: the requests they send and what they return."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from grpc.aio import AioRpcError, Metadata

from invoctl.client import Client, InvoctlError
from invoctl.v1 import control_pb2, invocation_pb2


class FakeControl:
    """Stands in for the InvocationControl stub: records requests, answers canned."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.error: AioRpcError | None = None

    def __getattr__(self, rpc: str) -> Any:
        async def call(request: Any, *, timeout: float | None, metadata: Any) -> Any:
            self.calls.append((rpc, request))
            if self.error is not None:
                raise self.error
            if rpc == "ListAuditEntries":
                entry = control_pb2.AuditEntry(id=7, operation="KillInvocation")
                return control_pb2.ListAuditEntriesResponse(entries=[entry], next_page_token="t2")
            response_type = getattr(control_pb2, f"{rpc}Response")
            invocation = invocation_pb2.Invocation(id=f"inv_after_{rpc}")
            return response_type(invocation=invocation)

        return call


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    async with Client("127.0.0.1:1") as client:  # the channel is never used
        client._control = FakeControl()  # type: ignore[assignment]
        yield client


def _sent(client: Client) -> tuple[str, Any]:
    [call] = client._control.calls  # type: ignore[attr-defined]
    return call


@pytest.mark.parametrize(
    ("method", "rpc"),
    [
        ("kill_invocation", "KillInvocation"),
        ("pause_invocation", "PauseInvocation"),
        ("resume_invocation", "ResumeInvocation"),
        ("purge_invocation", "PurgeInvocation"),
        ("purge_journal", "PurgeJournal"),
        ("restart_invocation_as_new", "RestartInvocationAsNew"),
    ],
)
async def test_operations_send_reason_and_request_id_and_return_the_invocation(
    client: Client, method: str, rpc: str
) -> None:
    invocation = await getattr(client, method)("inv_1", reason="stuck", request_id="r1")
    assert invocation.id == f"inv_after_{rpc}"
    name, request = _sent(client)
    assert name == rpc
    assert (request.invocation_id, request.reason, request.request_id) == ("inv_1", "stuck", "r1")


async def test_optional_fields_are_sent_empty(client: Client) -> None:
    await client.resume_invocation("inv_1")
    _, request = _sent(client)
    assert (request.deployment, request.reason, request.request_id) == ("", "", "")


async def test_resume_sends_the_deployment(client: Client) -> None:
    await client.resume_invocation("inv_1", deployment="latest")
    assert _sent(client)[1].deployment == "latest"


async def test_restart_sends_the_prefix_and_deployment(client: Client) -> None:
    await client.restart_invocation_as_new("inv_1", from_entry=3, deployment="dp_9")
    _, request = _sent(client)
    assert (request.from_entry, request.deployment) == (3, "dp_9")


async def test_restart_refuses_a_negative_prefix(client: Client) -> None:
    with pytest.raises(ValueError, match="negative"):
        await client.restart_invocation_as_new("inv_1", from_entry=-1)
    assert client._control.calls == []  # type: ignore[attr-defined]


async def test_list_audit_entries_pages(client: Client) -> None:
    entries, token = await client.list_audit_entries("inv_1", page_size=10, page_token="t1")
    assert [e.id for e in entries] == [7]
    assert token == "t2"
    _, request = _sent(client)
    assert (request.invocation_id, request.page_size, request.page_token) == ("inv_1", 10, "t1")


async def test_failures_are_raised_as_invoctl_errors(client: Client) -> None:
    client._control.error = AioRpcError(  # type: ignore[attr-defined]
        grpc.StatusCode.FAILED_PRECONDITION, Metadata(), Metadata(), "already completed"
    )
    with pytest.raises(InvoctlError) as caught:
        await client.kill_invocation("inv_1")
    assert caught.value.code == grpc.StatusCode.FAILED_PRECONDITION
