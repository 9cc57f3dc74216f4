"""Access control: every RPC of every service, called with no token, an unknown token,
each role's token and a worker token, gets the code its role allows; the identity goes
into the audit log, the history and the spans."""

from __future__ import annotations

import json

import grpc
import pytest
from google.protobuf import message_factory
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2
from grpc_status import rpc_status

from invoctl.client import Client, InvoctlError
from invoctl.v1 import control_pb2, ingress_pb2, workers_pb2
from invoctl.v1 import invocation_pb2 as pb
from tests.conftest import server_config

TOKENS = {
    "viewer": "viewer-token-0123456789",
    "operator": "operator-token-0123456789",
    "admin": "admin-token-0123456789",
    "worker": "worker-token-0123456789",
}
IDENTITY = {role: f"{role}-identity" for role in TOKENS}

# Written from the issue, not from the server's table, so that this test checks it.
READ = {
    "GetInvocation", "ListInvocations", "GetJournal", "ListAuditEntries",
    "WatchBulkOperation", "ListBulkOperations", "Attach", "ListDeployments",
    "ServerReflectionInfo",
}  # fmt: skip
OPERATE = READ | {
    "CancelInvocation", "PauseInvocation", "ResumeInvocation", "RestartInvocationAsNew",
    "CancelInvocations", "PauseInvocations", "ResumeInvocations", "RestartInvocationsAsNew",
    "StopBulkOperation", "Invoke",
}  # fmt: skip
ALLOWED = {
    "viewer": READ,
    "operator": OPERATE,
    "admin": OPERATE | {
        "KillInvocation", "PurgeInvocation", "PurgeJournal", "KillInvocations",
        "PurgeInvocations",
    },
    "worker": {"RegisterDeployment", "Connect"},
}  # fmt: skip
PUBLIC = {"Check", "Watch"}  # health

SERVICES = [
    control_pb2.DESCRIPTOR.services_by_name["InvocationControl"],
    ingress_pb2.DESCRIPTOR.services_by_name["Ingress"],
    workers_pb2.DESCRIPTOR.services_by_name["Workers"],
    health_pb2.DESCRIPTOR.services_by_name["Health"],
    reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"],
]
METHODS = [m for s in SERVICES for m in s.methods]


def tokens_config() -> str:
    from invoctl_server.api.auth import token_hash

    return json.dumps(
        {
            "tokens": [
                {"identity": IDENTITY[role], "role": role, "sha256": token_hash(token)}
                for role, token in TOKENS.items()
            ]
        }
    )


@pytest.fixture
async def secured(database):
    from invoctl_server.app import App

    app = await App.start(server_config(database, auth_tokens=tokens_config()))
    yield app
    await app.stop(grace=0)


async def call(address: str, method, token: str | None) -> grpc.StatusCode:
    """Call `method` with an empty request; the status it ends with (OK if it answers)."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    request = message_factory.GetMessageClass(method.input_type)()
    response = message_factory.GetMessageClass(method.output_type)
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    kinds = (method.client_streaming, method.server_streaming)
    async with grpc.aio.insecure_channel(address) as channel:
        make = {
            (False, False): channel.unary_unary,
            (False, True): channel.unary_stream,
            (True, False): channel.stream_unary,
            (True, True): channel.stream_stream,
        }[kinds]
        rpc = make(
            path,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response.FromString,
        )
        # A client stream sends nothing, only half-closes: the server decides on the
        # metadata alone, and a write racing its refusal would turn the refusal into
        # INTERNAL on the client (grpc.aio's _write, grpc/grpc#36066).
        argument = iter([]) if method.client_streaming else request
        try:
            if method.server_streaming:
                stream = rpc(argument, metadata=metadata, timeout=3)
                await stream.read()
                stream.cancel()
            else:
                await rpc(argument, metadata=metadata, timeout=3)
        except grpc.aio.AioRpcError as err:
            if err.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
                _assert_error_info(err)
            return err.code()
    return grpc.StatusCode.OK


def _assert_error_info(err: grpc.aio.AioRpcError) -> None:
    status = rpc_status.from_call(err)
    assert status is not None, err
    [detail] = status.details
    info = error_details_pb2.ErrorInfo()
    assert detail.Unpack(info)
    assert info.reason == err.code().name, info


DENIED = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
async def test_every_rpc_admits_exactly_the_roles_it_should(secured, method):
    address = secured.address
    if method.name in PUBLIC:
        assert await call(address, method, None) not in DENIED
        return
    assert await call(address, method, None) == grpc.StatusCode.UNAUTHENTICATED
    assert await call(address, method, "not-a-known-token") == grpc.StatusCode.UNAUTHENTICATED
    for role, token in TOKENS.items():
        code = await call(address, method, token)
        if method.name in ALLOWED[role]:
            assert code not in DENIED, (role, method.name, code)
        else:
            assert code == grpc.StatusCode.PERMISSION_DENIED, (role, method.name, code)


async def test_the_identity_is_in_the_audit_log_the_history_and_the_spans(secured, spans):
    from invoctl.sdk import Context, Service, Worker
    from tests.e2e._helpers import wait_state

    napper = Service("Napper")

    @napper.handler()
    async def nap(ctx: Context) -> None:
        await ctx.sleep(3600)

    address = secured.address
    async with (
        Client(address, token=TOKENS["operator"]) as operator,
        Client(address, token=TOKENS["admin"]) as admin,
        Worker([napper], server=address, token=TOKENS["worker"]),
    ):
        inv_id = await operator.send("Napper", "nap")
        await wait_state(admin, inv_id, pb.INVOCATION_STATE_SUSPENDED)
        spans.clear()
        killed = await admin.kill_invocation(inv_id, reason="audited")
        entries, _ = await admin.list_audit_entries(invocation_id=inv_id)
        journal = await admin.get_journal(inv_id)
    assert killed.outcome == pb.OUTCOME_KILLED
    assert [(e.identity, e.operation) for e in entries] == [(IDENTITY["admin"], "KillInvocation")]
    assert journal.transitions[-1].actor == f"operator:{IDENTITY['admin']}"
    [rpc] = [s for s in spans.get_finished_spans() if s.name.endswith("/KillInvocation")]
    assert rpc.attributes["enduser.id"] == IDENTITY["admin"]


async def test_an_operator_cannot_kill_and_a_worker_cannot_read(secured):
    async with (
        Client(secured.address, token=TOKENS["operator"]) as operator,
        Client(secured.address, token=TOKENS["worker"]) as worker,
    ):
        with pytest.raises(InvoctlError) as denied:
            await operator.kill_invocation("inv_" + "A" * 22)
        assert (denied.value.code, denied.value.reason) == (
            grpc.StatusCode.PERMISSION_DENIED,
            "PERMISSION_DENIED",
        )
        assert denied.value.metadata["identity"] == IDENTITY["operator"]
        with pytest.raises(InvoctlError) as denied:
            await worker.list_invocations()
        assert denied.value.code == grpc.StatusCode.PERMISSION_DENIED


async def test_requests_refused_for_their_caller_are_in_the_audit_log(secured):
    # The README: the audit log records every request, refused ones included, also those
    # refused before any servicer ran (the auth interceptor's).
    target = "inv_" + "B" * 22
    async with (
        Client(secured.address, token=TOKENS["operator"]) as operator,
        Client(secured.address) as nobody,
        Client(secured.address, token="not-a-known-token") as stranger,
        Client(secured.address, token=TOKENS["admin"]) as admin,
    ):
        with pytest.raises(InvoctlError) as denied:
            await operator.kill_invocation(target, reason="mine", request_id="req-denied")
        assert denied.value.code == grpc.StatusCode.PERMISSION_DENIED
        for anonymous in (nobody, stranger):
            with pytest.raises(InvoctlError) as unknown:
                await anonymous.cancel_invocation(target, reason="who am I")
            assert unknown.value.code == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(InvoctlError):
            await nobody.get_invocation(target)  # a read: not an operator request
        entries, _ = await admin.list_audit_entries()
    assert [(e.identity, e.operation, e.invocation_id, e.reason, e.result) for e in entries] == [
        ("", "CancelInvocation", target, "who am I", "UNAUTHENTICATED"),
        ("", "CancelInvocation", target, "who am I", "UNAUTHENTICATED"),
        (IDENTITY["operator"], "KillInvocation", target, "mine", "PERMISSION_DENIED"),
    ]
    assert entries[-1].request_id == "req-denied"


async def test_the_cli_says_how_to_pass_a_token(secured):
    from tests.e2e.test_cli import invoctl

    code, out, err = await invoctl(secured, "deployments", "ls")
    assert (code, out) == (1, "")
    assert err.startswith("error: UNAUTHENTICATED")
    assert f"hint: {secured.address} needs a token: pass --token TOKEN, or set INVOCTL_TOKEN" in err

    code, _, err = await invoctl(secured, "--token", "not-a-known-token", "deployments", "ls")
    assert code == 1 and err.startswith("error: UNAUTHENTICATED")
    assert "does not accept the token given (--token or INVOCTL_TOKEN)" in err
    assert "not-a-known-token" not in err  # a token is never printed back

    code, _, err = await invoctl(secured, "--token", TOKENS["viewer"], "deployments", "ls")
    assert code == 0, err
