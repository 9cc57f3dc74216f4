"""Bulk operations (DESIGN.md section 5): a durable job per request that acts on what its
selector matched when it started, page by page, with progress streamed to the end."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import grpc
import pytest

from invoctl.client import Client, InvoctlError, selector
from invoctl.sdk import Context, ObjectContext, Service, VirtualObject, Worker
from invoctl.v1 import bulk_pb2 as bpb
from invoctl.v1 import invocation_pb2 as pb
from tests.e2e._helpers import row_counts, wait_state
from tests.e2e._operator import Lab, assert_history_is_a_chain, transitions
from tests.support import wait_for

S = pb
RUNNING = bpb.BULK_OPERATION_STATE_RUNNING
COMPLETED = bpb.BULK_OPERATION_STATE_COMPLETED
STOPPED = bpb.BULK_OPERATION_STATE_STOPPED


async def naps(lab: Lab, n: int) -> list[str]:
    """n invocations suspended on an hour-long sleep."""
    ids = await asyncio.gather(*(lab.client.send("Lab", "nap") for _ in range(n)))
    await asyncio.gather(*(wait_state(lab.client, i, S.INVOCATION_STATE_SUSPENDED) for i in ids))
    return list(ids)


async def states(client: Client, ids: list[str]) -> set[int]:
    return {(await client.get_invocation(i)).state for i in ids}


async def run(client: Client, operation: str, where, **options: Any) -> list:
    """Every progress message of a bulk operation, to the final one."""
    return [p async for p in client.bulk_operation(operation, where, **options)]


def assert_sane(messages: list) -> bpb.BulkOperationProgress:
    """Counts only grow, only the last message is final, and its counts add up."""
    assert messages, "no progress at all"
    fields = ("matched", "processed", "succeeded", "skipped", "failed")
    for before, after in itertools.pairwise(messages):
        for f in fields:
            assert getattr(after, f) >= getattr(before, f), (f, before, after)
        assert not before.final
    last = messages[-1]
    assert last.final and last.state in (COMPLETED, STOPPED)
    assert last.processed == last.succeeded + last.skipped + last.failed
    if last.state == COMPLETED:
        assert last.processed == last.matched
    return last


async def test_bulk_cancel_acts_on_every_match_and_skips_what_it_cannot_cancel(lab, client):
    suspended = await naps(lab, 120)
    done = [await lab.make(S.INVOCATION_STATE_COMPLETED) for _ in range(3)]  # Lab/echo
    messages = await run(client, "cancel", selector("Lab"), reason="bad deploy")
    last = assert_sane(messages)
    assert last.bulk_operation_id.startswith("bulk_")
    assert last.kind == bpb.BULK_OPERATION_KIND_CANCEL
    assert (last.matched, last.succeeded, last.skipped, last.failed) == (123, 120, 3, 0)
    assert last.reason == "bad deploy" and last.selector.query == "Lab"
    for inv_id in suspended:
        inv = await client.attach(inv_id)  # woken: the cancel is raised at the sleep
        assert (inv.state, inv.outcome) == (S.INVOCATION_STATE_COMPLETED, S.OUTCOME_CANCELLED)
    steps = await transitions(client, suspended[0])
    assert_history_is_a_chain(steps)
    [cancelled] = [t for t in steps if t.event == "cancelled"]
    assert cancelled.actor == f"bulk:{last.bulk_operation_id}"
    for inv_id in done:
        assert (await client.get_invocation(inv_id)).outcome == S.OUTCOME_SUCCEEDED


async def test_dry_run_counts_and_samples_and_changes_nothing(lab, client, db):
    ids = await naps(lab, 25)
    before = await row_counts(db)
    [only] = await run(client, "kill", selector("Lab/nap"), dry_run=True)
    assert only.final and only.state == bpb.BULK_OPERATION_STATE_DRY_RUN
    assert only.matched == 25 and only.bulk_operation_id == ""
    assert list(only.sample_invocation_ids) == sorted(ids)[:20]
    assert await row_counts(db) == before
    assert await db.fetchval("SELECT count(*) FROM bulk_operations") == 0
    assert await states(client, ids) == {S.INVOCATION_STATE_SUSPENDED}


async def test_a_dry_run_breaks_the_matches_down_by_state(lab, client):
    await naps(lab, 3)
    for _ in range(2):
        await lab.make(S.INVOCATION_STATE_COMPLETED)
    [dry] = await run(client, "cancel", selector("Lab"), dry_run=True)
    assert (dry.matched, dry.would_act_on, dry.would_skip) == (5, 3, 2)
    assert [(c.state, c.matched, c.would_act_on) for c in dry.matched_by_state] == [
        (S.INVOCATION_STATE_SUSPENDED, 3, 3),
        (S.INVOCATION_STATE_COMPLETED, 2, 0),
    ]
    # A resume skips a ready invocation that never started (by the same state table).
    await lab.make(S.INVOCATION_STATE_READY)
    [dry] = await run(client, "resume", selector("LabIdle"), dry_run=True)
    assert [(c.state, c.matched, c.would_act_on) for c in dry.matched_by_state] == [
        (S.INVOCATION_STATE_READY, 1, 0)
    ]
    assert (dry.would_act_on, dry.would_skip) == (0, 1)


@pytest.mark.parametrize(
    ("where", "reason"),
    [
        (selector(), "EMPTY_SELECTOR"),
        (selector("Lab/"), "INVALID_SELECTOR"),
        (selector("inv_123"), "INVALID_SELECTOR"),
        (selector("Nobody/there"), "INVALID_SELECTOR"),  # handler or key? unknown service
        (selector("Lab/nap", handler="echo"), "INVALID_SELECTOR"),
        (selector(invocation_ids=["nope"]), "MALFORMED_ID"),
        (selector(deployment_id="dp_1"), "INVALID_DEPLOYMENT"),
    ],
)
async def test_bad_selectors_are_refused_and_change_nothing(lab, client, db, where, reason):
    before = await row_counts(db)
    with pytest.raises(InvoctlError) as refused:
        await run(client, "cancel", where)
    assert (refused.value.code, refused.value.reason) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        reason,
    )
    assert await row_counts(db) == before
    assert await db.fetchval("SELECT count(*) FROM bulk_operations") == 0


def query_services() -> list[Any]:
    greeter = Service("Greeter")

    @greeter.handler()
    async def greet(ctx: Context) -> None:
        await ctx.sleep(3600)

    @greeter.handler()
    async def wave(ctx: Context) -> None:
        await ctx.sleep(3600)

    cart = VirtualObject("CartObject")

    @cart.handler()
    async def add(ctx: ObjectContext) -> None:
        await ctx.sleep(3600)

    @cart.handler(shared=True)
    async def peek(ctx: ObjectContext) -> None:
        await ctx.sleep(3600)

    return [greeter, cart]


async def test_restate_query_strings_select_what_operators_expect(server, client):
    async with Worker(query_services(), server=server.address):
        sent = {
            "greet": [await client.send("Greeter", "greet") for _ in range(2)],
            "wave": [await client.send("Greeter", "wave")],
            "cart55/add": [await client.send("CartObject", "add", key="cart55")],
            "cart55/peek": [await client.send("CartObject", "peek", key="cart55")],
            "a_b%": [await client.send("CartObject", "peek", key="a_b%")],
            "axbx": [await client.send("CartObject", "peek", key="axbx")],
        }
        for ids in sent.values():
            for inv_id in ids:
                await wait_state(client, inv_id, S.INVOCATION_STATE_SUSPENDED)

        async def matched(query: str) -> int:
            [only] = await run(client, "cancel", selector(query), dry_run=True)
            return only.matched

        assert await matched("Greeter") == 3
        assert await matched("Greeter/greet") == 2  # two parts, a service: the handler
        assert await matched("CartObject/cart55") == 2  # two parts, an object: the key
        assert await matched("CartObject/cart55/add") == 1
        assert await matched("CartObject/a_b%") == 1  # literal: not a LIKE pattern
        assert await matched(sent["wave"][0]) == 1
        [peeks] = await run(client, "cancel", selector("CartObject", handler="peek"), dry_run=True)
        assert peeks.matched == 3


async def test_a_bulk_operation_outlives_its_stream_and_can_be_watched(lab, client):
    ids = await naps(lab, 60)
    stream = client.bulk_operation("pause", selector("Lab/nap"), max_per_second=100)
    first = await anext(stream)
    await stream.aclose()  # the client goes away; the operation goes on
    assert first.state == RUNNING and first.matched == 60
    watched = [p async for p in client.watch_bulk_operation(first.bulk_operation_id)]
    last = assert_sane([first, *watched])
    # Suspended is not a state pause applies to: every one is skipped, none failed.
    assert (last.succeeded, last.skipped, last.failed) == (0, 60, 0)
    assert await states(client, ids) == {S.INVOCATION_STATE_SUSPENDED}


async def test_the_same_request_id_reattaches_instead_of_starting_again(lab, client, db):
    await naps(lab, 30)
    first = await run(client, "kill", selector("Lab/nap"), request_id="kill-naps")
    again = await run(client, "kill", selector("Lab/nap"), request_id="kill-naps")
    assert again[-1].bulk_operation_id == first[-1].bulk_operation_id
    assert again[-1].succeeded == 30
    assert await db.fetchval("SELECT count(*) FROM bulk_operations") == 1
    with pytest.raises(InvoctlError) as reused:
        await run(client, "cancel", selector("Lab/nap"), request_id="kill-naps")
    assert reused.value.reason == "REQUEST_ID_REUSED"


async def test_stop_ends_it_after_a_page_and_leaves_the_rest(lab, client):
    ids = await naps(lab, 80)
    stream = client.bulk_operation("kill", selector("Lab/nap"), max_per_second=40)
    first = await anext(stream)
    await wait_for(
        lambda: _processed_at_least(client, first.bulk_operation_id, 10), what="a few pages"
    )
    stopped = await client.stop_bulk_operation(first.bulk_operation_id)
    rest = [p async for p in stream]
    last = assert_sane([first, *rest])
    assert stopped.state == STOPPED and last.state == STOPPED
    assert 10 <= last.processed < 80
    outcomes = [(await client.get_invocation(i)).outcome for i in ids]
    assert outcomes.count(S.OUTCOME_KILLED) == last.succeeded
    # Stopping a stopped operation changes nothing.
    assert (await client.stop_bulk_operation(first.bulk_operation_id)).processed == last.processed


async def _processed_at_least(client: Client, bulk_id: str, n: int) -> bool:
    ops, _ = await client.list_bulk_operations()
    return any(o.bulk_operation_id == bulk_id and o.processed >= n for o in ops)


async def test_max_per_second_holds(lab, client):
    await naps(lab, 40)
    loop = asyncio.get_running_loop()
    started = loop.time()
    messages = await run(client, "kill", selector("Lab/nap"), max_per_second=20)
    elapsed = loop.time() - started
    last = assert_sane(messages)
    assert last.processed == 40 and last.max_per_second == 20
    # The first page (a quarter second's worth) goes at once; the rest at 20 a second.
    assert elapsed >= (40 - 5) / 20
    assert last.rate <= 20 * 1.5
    assert len(messages) >= 4 * int(elapsed)  # at least 4 progress messages a second


async def test_overlapping_bulk_operations_both_finish(lab, client):
    ids = await naps(lab, 150)
    kill, cancel = await asyncio.gather(
        run(client, "kill", selector("Lab/nap")),
        run(client, "cancel", selector("Lab", states=["suspended"])),
    )
    for messages in (kill, cancel):
        last = assert_sane(messages)
        assert last.state == COMPLETED and last.failed == 0
    # Each invocation was acted on by one of them first; the other skipped it or, for a
    # cancelled one the kill reached while it compensated, killed it.
    assert kill[-1].succeeded + cancel[-1].succeeded >= 150
    for inv_id in ids:
        inv = await client.attach(inv_id)
        assert inv.outcome in (S.OUTCOME_KILLED, S.OUTCOME_CANCELLED)


async def test_bulk_transitions_are_traced_in_the_requests_trace(lab, client, spans):
    ids = await naps(lab, 30)
    spans.clear()
    last = assert_sane(await run(client, "kill", selector("Lab/nap")))

    # The server runs in this process, and its spans end just after what the client saw:
    # the RPC's once its stream's handler returns, a page's once its commit returns.
    async def all_ended() -> bool:
        ended = spans.get_finished_spans()
        pages = {s.context.span_id for s in ended if s.name == "bulk kill page"}
        killed = [s for s in ended if s.attributes.get("invoctl.event") == "killed"]
        rpc = [s for s in ended if s.name == "/invoctl.v1.InvocationControl/KillInvocations"]
        return (
            bool(rpc) and len(killed) == len(ids) and all(s.parent.span_id in pages for s in killed)
        )

    await wait_for(all_ended, what="the spans of the RPC, its pages and every kill")
    [rpc] = [
        s
        for s in spans.get_finished_spans()
        if s.name == "/invoctl.v1.InvocationControl/KillInvocations"
    ]
    pages = {
        s.context.span_id: s
        for s in spans.get_finished_spans()
        if s.name == "bulk kill page"
        and s.attributes["invoctl.bulk_operation.id"] == last.bulk_operation_id
    }
    assert pages and all(p.context.trace_id == rpc.context.trace_id for p in pages.values())
    killed = [
        s for s in spans.get_finished_spans() if s.attributes.get("invoctl.event") == "killed"
    ]
    assert sorted(s.attributes["restate.invocation.id"] for s in killed) == sorted(ids)
    for span in killed:
        assert span.context.trace_id == rpc.context.trace_id
        assert span.parent.span_id in pages  # the page that acted on it
    history = await transitions(client, ids[0])
    assert history[-1].trace_id == format(rpc.context.trace_id, "032x")


async def test_the_audit_log_records_bulk_requests(lab, client, op):
    await naps(lab, 5)
    last = assert_sane(await run(client, "kill", selector("Lab/nap"), reason="cleanup"))
    stopped = await client.stop_bulk_operation(last.bulk_operation_id)
    assert stopped.state == COMPLETED  # it had finished: a stop changes nothing
    with pytest.raises(InvoctlError):
        await run(client, "kill", selector())
    entries = await op.audit()
    started, stop, refused = entries[2], entries[1], entries[0]
    assert (started.operation, started.bulk_operation_id, started.reason, started.result) == (
        "KillInvocations",
        last.bulk_operation_id,
        "cleanup",
        "OK",
    )
    assert (stop.operation, stop.bulk_operation_id) == (
        "StopBulkOperation",
        last.bulk_operation_id,
    )
    assert (refused.operation, refused.result) == ("KillInvocations", "EMPTY_SELECTOR")


async def test_bulk_purge_resume_and_restart_follow_the_single_invocation_rules(lab, client):
    done = [await lab.make(S.INVOCATION_STATE_COMPLETED) for _ in range(4)]  # Lab/echo
    stuck = [await lab.make(S.INVOCATION_STATE_PAUSED) for _ in range(3)]  # Lab/stuck

    restarted = assert_sane(await run(client, "restart-as-new", selector("Lab/echo")))
    assert (restarted.matched, restarted.succeeded) == (4, 4)
    copies = [i for i in (await client.list_invocations(service="Lab"))[0] if i.restarted_from]
    assert sorted(c.restarted_from for c in copies) == sorted(done)

    resumed = assert_sane(await run(client, "resume", selector("Lab/stuck"), deployment="latest"))
    assert (resumed.matched, resumed.succeeded) == (3, 3)
    for inv_id in stuck:  # it ran again, failed again, and paused again
        inv = await wait_state(client, inv_id, S.INVOCATION_STATE_PAUSED)
        assert inv.attempt_count == 2

    purged = assert_sane(await run(client, "purge", selector(invocation_ids=done)))
    assert (purged.matched, purged.succeeded) == (4, 4)
    for inv_id in done:
        with pytest.raises(InvoctlError) as gone:
            await client.get_invocation(inv_id)
        assert gone.value.reason == "INVOCATION_NOT_FOUND"


async def test_failures_are_counted_with_their_reasons(lab, client, db):
    stuck = [await lab.make(S.INVOCATION_STATE_PAUSED) for _ in range(3)]
    [idle] = await client.list_deployments(service="LabIdle")  # serves no Lab handler
    last = assert_sane(await run(client, "resume", selector("Lab/stuck"), deployment=idle.id))
    assert (last.matched, last.succeeded, last.skipped, last.failed) == (3, 0, 0, 3)
    assert sorted(f.invocation_id for f in last.failures) == sorted(stuck)
    assert {f.reason for f in last.failures} == {"DEPLOYMENT_DOES_NOT_SERVE"}
    assert await states(client, stuck) == {S.INVOCATION_STATE_PAUSED}
    # A deployment that does not exist at all is refused before anything starts.
    with pytest.raises(InvoctlError) as unknown:
        await run(client, "resume", selector("Lab/stuck"), deployment="dp_" + "A" * 22)
    assert (unknown.value.code, unknown.value.reason) == (
        grpc.StatusCode.NOT_FOUND,
        "DEPLOYMENT_NOT_FOUND",
    )
    assert await db.fetchval("SELECT count(*) FROM bulk_operations") == 1


async def test_bulk_cancel_propagates_down_each_call_tree(server, client):
    from tests.e2e._operator import callee_of
    from tests.e2e.test_operator_cancel import tree_services

    release, events = asyncio.Event(), []
    try:
        async with Worker(tree_services(release, events), server=server.address):
            roots = [await client.send("Root", "start") for _ in range(3)]
            leaves = []
            for root in roots:
                middle = await callee_of(client, root)
                leaves.append(await callee_of(client, middle))
            for leaf in leaves:
                await wait_state(client, leaf, S.INVOCATION_STATE_RUNNING)
            last = assert_sane(await run(client, "cancel", selector("Root")))
            assert (last.matched, last.succeeded) == (3, 3)
            release.set()
            for leaf in leaves:  # reached through its root: it compensates and ends cancelled
                assert (await client.attach(leaf)).outcome == S.OUTCOME_CANCELLED
    finally:
        release.set()
    assert sorted(events).count("Leaf compensated") == 3


async def test_running_bulk_operations_are_limited(database):
    from invoctl_server.app import App
    from tests.conftest import server_config

    app = await App.start(server_config(database, max_bulk_operations=2))
    try:
        async with Client(app.address) as client, Lab(app.address, client) as lab:
            await naps(lab, 20)
            slow = [
                client.bulk_operation("pause", selector("Lab/nap"), max_per_second=2)
                for _ in range(2)
            ]
            started = [await anext(s) for s in slow]
            with pytest.raises(InvoctlError) as refused:
                await run(client, "kill", selector("Lab/nap"))
            assert (refused.value.code, refused.value.reason) == (
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "TOO_MANY_BULK_OPERATIONS",
            )
            await client.stop_bulk_operation(started[0].bulk_operation_id)
            last = assert_sane(await run(client, "kill", selector("Lab/nap")))
            assert last.matched == 20
            for s in slow:
                await s.aclose()
            await client.stop_bulk_operation(started[1].bulk_operation_id)
    finally:
        await app.stop(grace=0)


async def test_small_pages_overlap_and_act_on_each_invocation_once(database, db, spans):
    """Many pages, two at a time (the next acts while the one before it commits, and
    commits only after it): each invocation is acted on once, and the counts add up."""
    from invoctl_server.app import App
    from tests.conftest import server_config

    app = await App.start(server_config(database, bulk_page_size=7))
    try:
        async with Client(app.address) as client, Lab(app.address, client) as lab:
            ids = await naps(lab, 150)
            last = assert_sane(await run(client, "kill", selector("Lab/nap")))
    finally:
        await app.stop(grace=0)
    assert (last.state, last.matched, last.succeeded) == (COMPLETED, 150, 150)
    pages = [s for s in spans.get_finished_spans() if s.name == "bulk kill page"]
    assert len(pages) >= 150 // 7
    killed = await db.fetch(
        "SELECT invocation_id, count(*) AS n FROM invocation_transitions"
        " WHERE event = 'killed' AND invocation_id = ANY($1) GROUP BY 1",
        ids,
    )
    assert len(killed) == 150 and {r["n"] for r in killed} == {1}


async def test_an_explicit_id_list_is_capped(lab, client, db):
    too_many = ["inv_" + format(n, "022d") for n in range(10_001)]
    with pytest.raises(InvoctlError) as refused:
        await run(client, "cancel", selector(invocation_ids=too_many))
    assert (refused.value.code, refused.value.reason) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
    )
    assert refused.value.metadata["limit"] == "10000"
    assert await db.fetchval("SELECT count(*) FROM bulk_operations") == 0
