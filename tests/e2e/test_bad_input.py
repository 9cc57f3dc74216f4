"""Bad input gets a clear error (gRPC code + ErrorInfo reason) and changes nothing
(DESIGN.md sections 4 and 8)."""

from __future__ import annotations

import asyncio
import re

import grpc
import pytest

from invoctl.client import InvoctlError, invoke_request
from invoctl.sdk import Context, ObjectContext, Service, VirtualObject, Worker
from invoctl.v1 import ingress_pb2
from invoctl.v1 import invocation_pb2 as pb
from tests.e2e._helpers import row_counts

MiB = 1024 * 1024  # the server fixture's max_payload_bytes
UNKNOWN_ID = "inv_" + "A" * 22
INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND


@pytest.fixture
async def deployed(server):
    """A deployment serving a plain service and a virtual object; no worker runs them."""
    greeter = Service("Greeter")

    @greeter.handler()
    async def greet(ctx: Context, name: str) -> str:
        return name

    cart = VirtualObject("CartObject")

    @cart.handler()
    async def add(ctx: ObjectContext, item: str) -> None:
        return None

    worker = Worker([greeter, cart], server=server.address)
    await worker.register()
    await worker.stop()
    return worker.deployment_id


def _json_string_of_size(size: int) -> str:
    return '"' + "x" * (size - 2) + '"'


def _invoke(service: str, handler: str, *, key: str = "", text: str = '"bob"', **kw):
    request = invoke_request(service, handler, key=key or None, **kw)
    request.input = text
    return request


INVOKE_CASES = {
    "unknown service": (_invoke("Nobody", "greet"), NOT_FOUND, "SERVICE_NOT_FOUND"),
    "unknown handler": (_invoke("Greeter", "shout"), NOT_FOUND, "HANDLER_NOT_FOUND"),
    "oversize input": (
        _invoke("Greeter", "greet", text=_json_string_of_size(MiB + 1)),
        INVALID,
        "PAYLOAD_TOO_LARGE",
    ),
    "invalid JSON": (_invoke("Greeter", "greet", text="{bob"), INVALID, "INVALID_JSON"),
    "key for a plain service": (_invoke("Greeter", "greet", key="k"), INVALID, "INVALID_TARGET"),
    "no key for an object": (_invoke("CartObject", "add"), INVALID, "INVALID_TARGET"),
    "empty target": (_invoke("", ""), INVALID, "INVALID_ARGUMENT"),
    "no handler": (_invoke("Greeter", ""), INVALID, "INVALID_ARGUMENT"),
    "negative delay": (
        ingress_pb2.InvokeRequest(
            target=pb.Target(service="Greeter", handler="greet"),
            mode=ingress_pb2.INVOKE_MODE_SEND,
            delay={"seconds": -1},
        ),
        INVALID,
        "INVALID_ARGUMENT",
    ),
}


@pytest.mark.parametrize("case", INVOKE_CASES)
async def test_bad_invoke_is_refused_and_writes_nothing(deployed, client, db, case):
    request, code, reason = INVOKE_CASES[case]
    for mode in (ingress_pb2.INVOKE_MODE_CALL, ingress_pb2.INVOKE_MODE_SEND):
        request.mode = mode
        before = await row_counts(db)
        with pytest.raises(InvoctlError) as refused:
            await client.invoke_raw(request)
        assert (refused.value.code, refused.value.reason) == (code, reason)
        assert refused.value.message
        assert await row_counts(db) == before
    assert before["invocations"] == 0


async def test_payload_at_the_limit_is_accepted(deployed, client, db):
    request = _invoke("Greeter", "greet", text=_json_string_of_size(MiB), send=True)
    response = await client.invoke_raw(request)
    assert response.invocation.state == pb.INVOCATION_STATE_READY
    assert (await row_counts(db))["invocations"] == 1


@pytest.mark.parametrize(
    "bad_id", ["not-an-id", "inv_123", "", "inv_" + "!" * 22, "dp_" + "A" * 22]
)
async def test_malformed_ids_are_invalid_arguments(deployed, client, db, bad_id):
    before = await row_counts(db)
    for call in (client.get_invocation, client.get_journal, client.attach):
        with pytest.raises(InvoctlError) as refused:
            await call(bad_id)
        assert (refused.value.code, refused.value.reason) == (INVALID, "MALFORMED_ID")
        assert refused.value.metadata.get("invocation_id") == bad_id
    assert await row_counts(db) == before


async def test_unknown_ids_are_not_found(deployed, client, db):
    before = await row_counts(db)
    for call in (client.get_invocation, client.get_journal, client.attach):
        with pytest.raises(InvoctlError) as refused:
            await call(UNKNOWN_ID)
        assert (refused.value.code, refused.value.reason) == (NOT_FOUND, "INVOCATION_NOT_FOUND")
        assert refused.value.metadata.get("invocation_id") == UNKNOWN_ID
    assert await row_counts(db) == before


async def test_bad_list_filters_are_invalid_arguments(deployed, client):
    cases = [
        ({"deployment_id": "dp_nope"}, "INVALID_DEPLOYMENT"),
        ({"page_token": "bm90LWFuLWlk"}, "INVALID_PAGE_TOKEN"),  # base64 of "not-an-id"
        ({"page_token": "%%%"}, "INVALID_PAGE_TOKEN"),
    ]
    for kwargs, reason in cases:
        with pytest.raises(InvoctlError) as refused:
            await client.list_invocations(**kwargs)
        assert (refused.value.code, refused.value.reason) == (INVALID, reason), kwargs


@pytest.mark.parametrize("size", [4 * MiB + 1, 5 * MiB, 40 * MiB])
async def test_an_oversize_input_gets_the_clear_error_whatever_its_size(deployed, client, db, size):
    # Past gRPC's default receive limit (4 MiB) too: the server reads messages far larger
    # than its payload limit, so its own check answers, with its reason and the limit.
    request = _invoke("Greeter", "greet", text=_json_string_of_size(size), send=True)
    with pytest.raises(InvoctlError) as refused:
        await client.invoke_raw(request)
    assert (refused.value.code, refused.value.reason) == (INVALID, "PAYLOAD_TOO_LARGE")
    assert refused.value.metadata == {"field": "input", "limit": str(MiB)}
    headers = _invoke("Greeter", "greet", send=True, headers={"h": "x" * (4 * MiB)})
    with pytest.raises(InvoctlError) as refused:
        await client.invoke_raw(headers)
    assert (refused.value.code, refused.value.reason) == (INVALID, "PAYLOAD_TOO_LARGE")
    assert refused.value.metadata == {"field": "headers", "limit": str(MiB)}
    assert (await row_counts(db))["invocations"] == 0


async def test_nul_characters_are_invalid_arguments(deployed, client, db):
    # Postgres text cannot hold NUL: the statement fails, and the client hears why.
    from invoctl.client import selector

    before = await row_counts(db)
    for attempt in (
        lambda: client.send("Greeter\x00", "greet"),
        lambda: client.send("Greeter", "greet", idempotency_key="k\x00"),
    ):
        with pytest.raises(InvoctlError) as refused:
            await attempt()
        assert (refused.value.code, refused.value.reason) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_ARGUMENT",
        ), refused.value
    for where in (selector(service="a\x00b"), selector("Greeter/a\x00")):
        with pytest.raises(InvoctlError) as refused:
            [p async for p in client.bulk_operation("cancel", where, dry_run=True)]
        assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT, refused.value
    assert await row_counts(db) == before


def _longest_echo(text: str, char: str) -> int:
    """The longest run of `char` in `text`: how much of an input of `char`s was echoed."""
    return max((len(run) for run in re.findall(f"{re.escape(char)}+", text)), default=0)


async def test_errors_echo_at_most_200_characters_of_the_input(deployed, client, http):
    # README: errors echo at most 200 characters of what the client sent, in the message
    # and in each metadata value, over gRPC and HTTP alike.
    from invoctl.client import selector

    long = "x" * 10240
    refusals = [
        lambda: client.get_invocation(long),
        lambda: client.get_journal("inv_" + long),
        lambda: client.list_invocations(deployment_id=long),
        lambda: client.send(long, "greet"),
        lambda: client.send("Greeter", long),
        lambda: client.cancel_invocation(long, request_id="r"),
        lambda: client.resume_invocation(UNKNOWN_ID, deployment=long),
        lambda: anext(client.bulk_operation("cancel", selector(long + "/"), dry_run=True)),
    ]
    for refusal in refusals:
        with pytest.raises(InvoctlError) as refused:
            await refusal()
        err = refused.value
        assert err.code in (INVALID, NOT_FOUND), err
        assert _longest_echo(err.message, "x") <= 200, err.message[:300]
        assert all(len(v) <= 200 for v in err.metadata.values()), err.metadata
    for path in (
        f"/invocations/{long}",
        f"/invocations?state={long}",
        f"/invocations?{long}=1",
        f"/invocations?page_size={long}",
        f"/{long}",
    ):
        answer = await http.get(path)
        body = answer.json
        assert answer.status in (400, 404), (path[:40], answer.status)
        assert _longest_echo(body["message"], "x") <= 200, (path[:40], body["message"][:300])
        assert all(len(v) <= 200 for v in body["metadata"].values()), path[:40]


async def test_unknown_enum_values_are_invalid_arguments(
    deployed, server, client, db, workers, http
):
    # Proto3 keeps enum numbers it does not define: 99 must not run as the zero value's
    # meaning (a call, pause on max attempts), but be refused wherever an enum comes in.
    from invoctl.v1 import bulk_pb2, control_pb2, control_pb2_grpc, workers_pb2

    before = await row_counts(db)
    for mode in (99, -3):
        request = _invoke("Greeter", "greet")
        request.mode = mode
        # Accepted, it would run as a call and wait for a worker that never comes.
        with pytest.raises(InvoctlError) as refused:
            async with asyncio.timeout(10):
                await client.invoke_raw(request)
        assert (refused.value.code, refused.value.reason) == (INVALID, "INVALID_ARGUMENT")
        assert refused.value.metadata.get("field") == "mode"
        answer = await http.post(
            "/invocations", json={"target": {"service": "Greeter", "handler": "greet"},
                                  "input": '"bob"', "mode": mode},
        )  # fmt: skip
        answer.error(400, "INVALID_ARGUMENT")

    def service(kind: int = workers_pb2.SERVICE_KIND_SERVICE, on_max: int = 0):
        return workers_pb2.ServiceDefinition(
            name="Odd", kind=kind,
            handlers=[workers_pb2.HandlerDefinition(name="h")],
            retry_policy=workers_pb2.RetryPolicy(on_max_attempts=on_max),
        )  # fmt: skip

    registrations = [service(kind=99), service(on_max=99), service(on_max=-1)]
    async with grpc.aio.insecure_channel(server.address) as channel:
        control = control_pb2_grpc.InvocationControlStub(channel)
        calls = [
            lambda: control.ListInvocations(control_pb2.ListInvocationsRequest(states=[99])),
            lambda: control.ListInvocations(control_pb2.ListInvocationsRequest(outcome=99)),
            lambda: control.ListBulkOperations(bulk_pb2.ListBulkOperationsRequest(states=[99])),
            lambda: anext(aiter(control.CancelInvocations(bulk_pb2.CancelInvocationsRequest(
                selector=bulk_pb2.BulkSelector(service="Greeter", states=[99]), dry_run=True,
            )))),
            *(lambda s=s: workers.RegisterDeployment(
                workers_pb2.RegisterDeploymentRequest(services=[s])) for s in registrations),
        ]  # fmt: skip
        for n, call in enumerate(calls):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await call()
            assert refused.value.code() == INVALID, (n, refused.value)
    assert await row_counts(db) == before


NOT_JSON_NUMBERS = ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "[1, NaN]",
                    '{"a": {"b": 1E400}}']  # fmt: skip


async def test_non_finite_numbers_are_refused_where_json_comes_in(
    deployed, server, client, db, http, workers
):
    # Python's parser takes NaN, Infinity and 1e999 (as inf); no JSON encoder writes them
    # back, so a handler returning its input failed and retried for ever. Refused at the
    # door, over gRPC, HTTP (in the input and in the body itself) and from a worker.
    from invoctl.v1 import workers_pb2 as wpb
    from tests.e2e._raw import RawSession, register, run_entry

    before = await row_counts(db)
    for text in NOT_JSON_NUMBERS:
        with pytest.raises(InvoctlError) as refused:
            await client.invoke_raw(_invoke("Greeter", "greet", text=text, send=True))
        assert (refused.value.code, refused.value.reason) == (INVALID, "INVALID_JSON"), text
        target = {"service": "Greeter", "handler": "greet"}
        answer = await http.post("/invocations", json={"target": target, "input": text})
        answer.error(400, "INVALID_JSON")
        raw = '{"target": {"service": "Greeter", "handler": "greet"}, "input": "1", "x": %s}'
        answer = await http.post("/invocations", data=raw % text,
                                 headers={"Content-Type": "application/json"})  # fmt: skip
        answer.error(400, "INVALID_JSON")
    assert await row_counts(db) == before

    # A worker's step value and output are payloads too. The server fails an attempt
    # whose message it refused (the worker gives it up): each refusal here is one attempt.
    deployment_id = await register(workers)
    session = RawSession(workers, deployment_id, "raw")
    try:
        await session.open(heartbeat=True)
        inv_id = await client.send("Raw", "work", "in")
        for n, (kind, text) in enumerate(
            [("append", "NaN"), ("complete", "1e999"), ("append", "[-Infinity]"),
             ("complete", '{"a": Infinity}')]
        ):  # fmt: skip
            start = (await session.read("attempt")).attempt
            assert start.attempt == n + 1
            if kind == "append":
                message = wpb.JournalAppend(invocation_id=inv_id, attempt=start.attempt,
                                            entries=[run_entry(0, text)])  # fmt: skip
            else:
                message = wpb.AttemptComplete(
                    invocation_id=inv_id, attempt=start.attempt, output=text
                )
            ack = await session.request(**{kind: message})
            assert ack.error_reason == "INVALID_JSON", (text, ack)
        journal = await client.get_journal(inv_id)
        assert list(journal.entries) == [] and journal.invocation.output == ""
        assert journal.invocation.state != pb.INVOCATION_STATE_COMPLETED
    finally:
        await session.close()
