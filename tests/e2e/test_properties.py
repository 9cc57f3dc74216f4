"""Bad input never gets in (property-based): random IDs, selectors and payloads get a
clean gRPC error or a correct answer, the server stays healthy, and a refused request
changes no row. Selectors with quotes, `%`, `_`, unicode and 10 KB strings included.

The tests are synchronous (hypothesis drives them) against a server process; the
database is read with a short-lived asyncpg connection per check.
"""

from __future__ import annotations

import asyncio
import json

import asyncpg
import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from invoctl.v1 import bulk_pb2, control_pb2, control_pb2_grpc, ingress_pb2, ingress_pb2_grpc
from invoctl.v1 import invocation_pb2 as pb
from tests.support import ServerProcess

TABLES = (
    "invocations", "invocation_transitions", "journal_entries", "object_locks",
    "bulk_operations", "bulk_operation_members", "audit_log",
)  # fmt: skip
# What a refused request may answer with; anything else (INTERNAL above all) is a bug.
CLEAN = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
}
SERVICES = ("Alpha", "Beta_%", "Gamma")
HANDLERS = ("run", "wait")
KEYS = ("k1", "k_%", "ключ")

# Text operators might type, and text nobody should: quotes, LIKE wildcards, unicode, long.
nasty = st.one_of(
    st.sampled_from(["", "'", '"', "%", "_", "%_%", "' OR 1=1 --", "Alpha/run", "inv_", "\\"]),
    st.text(max_size=40),
    st.text(alphabet="%_'\"\\/", max_size=20),
    st.just("x" * 10_000),
    st.sampled_from(SERVICES + HANDLERS + KEYS),
)


@pytest.fixture
def live(database):
    """A server process on a fresh database, with a few invocations that never run."""
    server = ServerProcess(database).start()
    try:
        channel = grpc.insecure_channel(server.address)
        _seed(channel, database)
        yield channel, database
        channel.close()
    finally:
        server.kill()


def _seed(channel: grpc.Channel, database: str) -> None:
    from invoctl.v1 import workers_pb2, workers_pb2_grpc

    workers = workers_pb2_grpc.WorkersStub(channel)
    workers.RegisterDeployment(
        workers_pb2.RegisterDeploymentRequest(
            services=[
                workers_pb2.ServiceDefinition(
                    name=name,
                    kind=workers_pb2.SERVICE_KIND_VIRTUAL_OBJECT
                    if name == "Gamma"
                    else workers_pb2.SERVICE_KIND_SERVICE,
                    handlers=[workers_pb2.HandlerDefinition(name=h) for h in HANDLERS],
                )
                for name in SERVICES
            ]
        )
    )
    ingress = ingress_pb2_grpc.IngressStub(channel)
    for service in SERVICES:
        for handler in HANDLERS:
            for key in KEYS if service == "Gamma" else ("",):
                ingress.Invoke(
                    ingress_pb2.InvokeRequest(
                        target=pb.Target(service=service, handler=handler, key=key),
                        input="1",
                        mode=ingress_pb2.INVOKE_MODE_SEND,
                        delay=_an_hour(),
                    )
                )


def _an_hour():
    from google.protobuf import duration_pb2

    return duration_pb2.Duration(seconds=3600)


def _rows(database: str) -> dict[str, int]:
    async def count() -> dict[str, int]:
        conn = await asyncpg.connect(database)
        try:
            return {t: await conn.fetchval(f"SELECT count(*) FROM {t}") for t in TABLES}
        finally:
            await conn.close()

    return asyncio.run(count())


def _invocations(database: str) -> list[dict]:
    async def read() -> list[dict]:
        conn = await asyncpg.connect(database)
        try:
            rows = await conn.fetch(
                "SELECT id, service, handler, object_key, state FROM invocations"
            )
            return [dict(r) for r in rows]
        finally:
            await conn.close()

    return asyncio.run(read())


def _healthy(channel: grpc.Channel) -> None:
    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def _clean_refusal(err: grpc.RpcError) -> None:
    assert err.code() in CLEAN, (err.code(), err.details())
    status = rpc_status.from_call(err)
    assert status is not None and status.details, "no ErrorInfo"
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info) and info.reason.isupper(), info
    assert "Traceback" not in (err.details() or "")


SLOW = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@SLOW
@given(text=nasty)
def test_random_ids_get_a_clean_refusal_and_change_nothing(live, text):
    channel, database = live
    control = control_pb2_grpc.InvocationControlStub(channel)
    before = _rows(database)
    for rpc in ("GetInvocation", "CancelInvocation", "KillInvocation", "PurgeInvocation"):
        request = getattr(control_pb2, f"{rpc}Request")(invocation_id=text)
        with pytest.raises(grpc.RpcError) as refused:
            getattr(control, rpc)(request, timeout=10)
        _clean_refusal(refused.value)
    after = _rows(database)
    # Refusals are audited (the audit log is the one table that grows); nothing else moves.
    assert {t: n for t, n in after.items() if t != "audit_log"} == {
        t: n for t, n in before.items() if t != "audit_log"
    }
    _healthy(channel)


def _expected(invocations: list[dict], s: bulk_pb2.BulkSelector) -> int:
    """How many seeded invocations a selector without a query matches."""
    states = {
        pb.InvocationState.Name(x).removeprefix("INVOCATION_STATE_").lower().replace("_", "-")
        for x in s.states
    }
    return sum(
        1
        for i in invocations
        if (not s.service or i["service"] == s.service)
        and (not s.handler or i["handler"] == s.handler)
        and (not s.key or i["object_key"] == s.key)
        and (not states or i["state"] in states)
        and (not s.invocation_ids or i["id"] in s.invocation_ids)
    )


selectors = st.builds(
    bulk_pb2.BulkSelector,
    query=st.one_of(st.just(""), nasty),
    service=st.one_of(st.just(""), nasty),
    handler=st.one_of(st.just(""), nasty),
    key=st.one_of(st.just(""), nasty),
    states=st.lists(st.sampled_from(list(pb.InvocationState.values())), max_size=3),
)


@SLOW
@given(selector=selectors)
def test_random_selectors_count_right_or_are_refused_cleanly(live, selector):
    channel, database = live
    control = control_pb2_grpc.InvocationControlStub(channel)
    before = _rows(database)
    request = bulk_pb2.CancelInvocationsRequest(selector=selector, dry_run=True)
    try:
        [only] = list(control.CancelInvocations(request, timeout=20))
    except grpc.RpcError as err:
        _clean_refusal(err)
    else:
        assert only.final and only.state == bulk_pb2.BULK_OPERATION_STATE_DRY_RUN
        if not selector.query:
            assert only.matched == _expected(_invocations(database), selector), selector
    assert _rows(database) == before  # a dry run writes nothing, refused or not
    _healthy(channel)


payloads = st.one_of(
    st.text(max_size=200),
    st.builds(json.dumps, st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                                       lambda c: st.lists(c) | st.dictionaries(st.text(), c),
                                       max_leaves=20)),
    st.just("[" * 5000),
    st.just('"' + "x" * (1024 * 1024) + '"'),  # over the 1 MiB limit
)  # fmt: skip


@SLOW
@given(payload=payloads)
def test_random_payloads_are_accepted_as_json_or_refused_cleanly(live, payload):
    channel, database = live
    ingress = ingress_pb2_grpc.IngressStub(channel)
    before = _rows(database)
    request = ingress_pb2.InvokeRequest(
        target=pb.Target(service="Alpha", handler="run"),
        input=payload,
        mode=ingress_pb2.INVOKE_MODE_SEND,
        delay=_an_hour(),
    )
    try:
        ingress.Invoke(request, timeout=20)
    except grpc.RpcError as err:
        _clean_refusal(err)
        assert _rows(database) == before
    else:
        json.loads(payload or "null")  # only JSON gets in
        assert _rows(database)["invocations"] == before["invocations"] + 1
    _healthy(channel)
