"""A bulk page's transition spans (page_spans, encoded by hand) at a real OTLP/gRPC
receiver: every attribute, the page's span as parent, in the request's trace, linked to
each invocation's own trace, the resource and scope, the history rows' IDs; the sampler's
decisions; and nothing from a page that rolled back."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

from invoctl.client import Client, selector
from invoctl.v1 import invocation_pb2 as pb
from tests._otlp import OtlpReceiver
from tests.e2e._helpers import wait_state
from tests.e2e._operator import Lab, transitions
from tests.e2e.test_traces import SERVICE_NAME, UNTIL_EXIT, exporting_to, start_server

PAGE_SPAN = "bulk cancel page"


@pytest.fixture
async def receiver():
    async with OtlpReceiver() as r:
        yield r


async def scheduled(client: Client, n: int) -> list[str]:
    """n invocations scheduled an hour ahead: a cancel completes them at once."""
    ids = await asyncio.gather(*(client.send("Lab", "echo", "later", delay=3600) for _ in range(n)))
    for inv_id in ids:
        await wait_state(client, inv_id, pb.INVOCATION_STATE_SCHEDULED)
    return list(ids)


async def cancel(client: Client, ids: list[str]) -> str:
    """Bulk-cancel `ids` in pages of 10 (100/s, 0.1 s a page); returns the operation's ID."""
    progress = [
        p
        async for p in client.bulk_operation(
            "cancel", selector(invocation_ids=ids), max_per_second=100
        )
    ]
    assert progress[-1].succeeded == len(ids)
    return progress[-1].bulk_operation_id


async def cancelled_rows(client: Client, ids: list[str]) -> list:
    """Bulk-cancel `ids` (see cancel) and return the history rows the operation wrote."""
    bulk_id = await cancel(client, ids)
    return [t for i in ids for t in await transitions(client, i) if t.actor == f"bulk:{bulk_id}"]


async def _bulk_steps(receiver, bulk_id: str, histories: dict) -> tuple[dict, dict]:
    """Each invocation's one history row the bulk operation wrote, and the spans the
    receiver got for them by span ID."""
    rows = {i: [t for t in h if t.actor == f"bulk:{bulk_id}"] for i, h in histories.items()}
    assert all(len(r) == 1 for r in rows.values()), rows
    return rows, await receiver.wait_for_spans(r[0].span_id for r in rows.values())


async def test_a_pages_spans_arrive_with_everything_the_sdk_would_give_them(database, receiver):
    env = exporting_to(receiver, OTEL_RESOURCE_ATTRIBUTES="deployment.environment=page-test")
    server = await start_server(database, env)
    try:
        async with Client(server.address) as client, Lab(server.address, client):
            ids = await scheduled(client, 25)
            with trace.get_tracer("tests").start_as_current_span("ask for a bulk cancel") as caller:
                bulk_id = await cancel(client, ids)
            histories = {i: await transitions(client, i) for i in ids}
    finally:
        await asyncio.to_thread(server.stop)

    request_trace = format(caller.get_span_context().trace_id, "032x")
    rows, received = await _bulk_steps(receiver, bulk_id, histories)
    pages = {s.span_id: s for s in receiver.named(PAGE_SPAN)}
    assert len(pages) >= 3  # 25 in pages of 10

    parents = set()
    for inv_id, [row] in rows.items():
        span = received[row.span_id]
        assert span.trace_id == row.trace_id == request_trace
        assert span.name == f"invocation {row.event}" == "invocation cancelled"
        assert span.attributes == {
            "restate.invocation.id": inv_id,
            "restate.invocation.target": "Lab/echo",
            "invoctl.state.from": "scheduled",
            "invoctl.state.to": "completed",
            "invoctl.event": "cancelled",
            "invoctl.actor": f"bulk:{bulk_id}",
        }
        # A child of its page's span, linked to the invocation's own (accepted) trace.
        page = pages[span.parent_span_id]
        assert page.trace_id == request_trace
        assert page.attributes["invoctl.bulk_operation.id"] == bulk_id
        parents.add(page.span_id)
        accepted = histories[inv_id][0]
        assert accepted.event == "accepted"
        assert span.links == ((accepted.trace_id, accepted.span_id),)
        assert span.scope == "invoctl.server"
        assert span.resource["service.name"] == SERVICE_NAME
        assert span.resource["deployment.environment"] == "page-test"
        assert span.resource == receiver.by_span_id[accepted.span_id].resource  # an SDK span's
    assert len(parents) >= 3


async def test_a_pages_one_statement_spans_have_what_the_general_paths_have(database, receiver):
    """A bulk kill of suspended invocations, none called nor calling, is one statement a
    page (single_statement.py): its spans start before it reads the rows, and get the
    target, the states and the link to the invocation's trace from the rows it returns."""
    server = await start_server(database, exporting_to(receiver))
    try:
        async with Client(server.address) as client, Lab(server.address, client) as lab:
            ids = [await lab.make(pb.INVOCATION_STATE_SUSPENDED) for _ in range(5)]
            with trace.get_tracer("tests").start_as_current_span("ask for a bulk kill") as caller:
                where = selector(invocation_ids=ids)
                progress = [p async for p in client.bulk_operation("kill", where)]
            assert progress[-1].succeeded == len(ids)
            bulk_id = progress[-1].bulk_operation_id
            histories = {i: await transitions(client, i) for i in ids}
            targets = {i: (await client.get_invocation(i)).target for i in ids}
    finally:
        await asyncio.to_thread(server.stop)

    request_trace = format(caller.get_span_context().trace_id, "032x")
    rows, received = await _bulk_steps(receiver, bulk_id, histories)
    pages = {s.span_id: s for s in receiver.named("bulk kill page")}
    for inv_id, [row] in rows.items():
        span = received[row.span_id]
        assert span.trace_id == row.trace_id == request_trace
        assert span.name == f"invocation {row.event}" == "invocation killed"
        assert span.attributes == {
            "restate.invocation.id": inv_id,
            "restate.invocation.target": targets[inv_id],
            "invoctl.state.from": "suspended",
            "invoctl.state.to": "completed",
            "invoctl.event": "killed",
            "invoctl.actor": f"bulk:{bulk_id}",
        }
        assert pages[span.parent_span_id].trace_id == request_trace
        accepted = histories[inv_id][0]
        assert span.links == ((accepted.trace_id, accepted.span_id),)
        assert span.resource == receiver.by_span_id[accepted.span_id].resource  # an SDK span's


async def test_always_off_sends_none(database, receiver):
    env = exporting_to(receiver, OTEL_TRACES_SAMPLER="always_off")
    server = await start_server(database, env)
    try:
        async with Client(server.address) as client, Lab(server.address, client):
            rows = await cancelled_rows(client, await scheduled(client, 12))
    finally:
        # The process flushes its exporters as it exits: whatever it would send, it has.
        await asyncio.to_thread(server.stop)
    assert server.proc is not None and server.proc.returncode == 0
    assert len(rows) == 12 and all(t.trace_id and t.span_id for t in rows)
    assert receiver.spans == []


async def test_a_trace_id_ratio_samples_the_traces_the_sdk_would(database, receiver):
    """traceidratio 0.5: each bulk operation's trace (its RPC's) is sampled or not by its
    trace ID, and its transitions' spans with it."""
    env = exporting_to(receiver, OTEL_TRACES_SAMPLER="traceidratio", OTEL_TRACES_SAMPLER_ARG="0.5")
    server = await start_server(database, env)
    rows = []
    try:
        async with Client(server.address) as client, Lab(server.address, client):
            for _ in range(8):
                rows += await cancelled_rows(client, await scheduled(client, 2))
    finally:
        await asyncio.to_thread(server.stop)
    assert server.proc is not None and server.proc.returncode == 0
    assert len(rows) == 16
    ratio = TraceIdRatioBased(0.5)
    sampled = {
        t.span_id
        for t in rows
        if ratio.should_sample(None, int(t.trace_id, 16), "x").decision.is_sampled()
    }
    received = [s for s in receiver.spans if s.name == "invocation cancelled"]
    assert {s.span_id for s in received} == sampled


# The first page's advance fails once, after its transitions: its transaction rolls back,
# and the runner retries the page. nextval() is not rolled back: it counts the attempts.
_FAIL_FIRST_ADVANCE = """
    CREATE SEQUENCE page_attempts;
    CREATE FUNCTION fail_first_advance() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.cursor IS DISTINCT FROM OLD.cursor AND nextval('page_attempts') = 1 THEN
            RAISE EXCEPTION 'the test fails this page once';
        END IF;
        RETURN NEW;
    END $$;
    CREATE TRIGGER fail_first_advance BEFORE UPDATE ON bulk_operations
        FOR EACH ROW EXECUTE FUNCTION fail_first_advance();
"""


async def test_a_rolled_back_page_sends_nothing(database, db, receiver):
    await db.execute(_FAIL_FIRST_ADVANCE)
    server = await start_server(database, exporting_to(receiver))
    try:
        async with Client(server.address) as client, Lab(server.address, client):
            rows = {t.span_id for t in await cancelled_rows(client, await scheduled(client, 15))}
    finally:
        await asyncio.to_thread(server.stop)
    assert await db.fetchval("SELECT last_value FROM page_attempts") >= 3  # 2 pages, 1 retry
    assert len(rows) == 15
    cancelled = {s.span_id for s in receiver.named("invocation cancelled")}
    # The first attempt's 10 spans were started, never ended: only the committed ones came.
    assert cancelled == rows


async def test_a_pages_spans_still_queued_are_sent_as_the_server_exits(database, receiver):
    """A long batch delay and a huge batch: without the drain at exit, none would arrive."""
    env = exporting_to(receiver, **UNTIL_EXIT)
    server = await start_server(database, env)
    try:
        async with Client(server.address) as client, Lab(server.address, client):
            rows = {t.span_id for t in await cancelled_rows(client, await scheduled(client, 12))}
        assert receiver.spans == []  # still queued
    finally:
        await asyncio.to_thread(server.stop)
    assert len(rows) == 12
    await receiver.wait_for_spans(rows)


async def test_a_bulk_purges_and_restarts_spans_come_from_their_pages(database, receiver):
    """The purged span (trace_purge) and a restart's accepted span (accept) of a page too."""
    server = await start_server(database, exporting_to(receiver))
    try:
        async with Client(server.address) as client, Lab(server.address, client) as lab:
            purged = [await lab.make(pb.INVOCATION_STATE_COMPLETED) for _ in range(3)]
            restarted = [await lab.make(pb.INVOCATION_STATE_COMPLETED) for _ in range(3)]
            accepted = {i: (await transitions(client, i))[0] for i in purged}
            for operation, ids in (("purge", purged), ("restart-as-new", restarted)):
                where = selector(invocation_ids=ids)
                progress = [p async for p in client.bulk_operation(operation, where)]
                assert progress[-1].succeeded == 3
            new = {
                inv.restarted_from: inv
                async for inv in client.iter_invocations()
                if inv.restarted_from in restarted
            }
            new_accepted = {i: (await transitions(client, new[i].id))[0] for i in restarted}
    finally:
        await asyncio.to_thread(server.stop)

    pages = {s.span_id: s.name for s in receiver.spans if s.name.startswith("bulk ")}
    spans = {s.attributes["restate.invocation.id"]: s for s in receiver.named("invocation purged")}
    assert spans.keys() == set(purged)
    for inv_id, span in spans.items():
        assert pages[span.parent_span_id] == "bulk purge page"
        assert span.links == ((accepted[inv_id].trace_id, accepted[inv_id].span_id),)
        assert span.attributes["invoctl.actor"].startswith("bulk:")
    received = await receiver.wait_for_spans(t.span_id for t in new_accepted.values())
    for old, row in new_accepted.items():
        span = received[row.span_id]
        assert span.name == "invocation accepted" and row.event == "accepted"
        assert span.attributes["restate.invocation.id"] == new[old].id
        assert pages[span.parent_span_id] == "bulk restart page"
        assert span.trace_id == row.trace_id
