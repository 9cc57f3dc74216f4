"""Bulk jobs over HTTP: start (202 + Location), dry run, re-attach by request_id, list,
detail, stop, and progress as server-sent events (at least four a second, resumable with
Last-Event-ID, ending with the final snapshot)."""

from __future__ import annotations

import asyncio
import itertools

from invoctl.v1 import invocation_pb2 as pb
from tests.e2e._helpers import row_counts, wait_state
from tests.e2e._http import read_events
from tests.e2e._operator import S


async def _suspended(client, n: int) -> list[str]:
    ids = list(await asyncio.gather(*(client.send("Lab", "nap") for _ in range(n))))
    for inv_id in ids:
        await wait_state(client, inv_id, S.INVOCATION_STATE_SUSPENDED)
    return ids


async def test_a_job_streams_progress_and_resumes_with_last_event_id(http, lab, client):
    ids = await _suspended(client, 30)
    job = {
        "operation": "cancel", "selector": {"invocationIds": ids}, "reason": "bad deploy",
        "max_per_second": 20, "request_id": "r-sse",
    }  # fmt: skip
    started = await http.post("/bulk-operations", json=job)
    assert started.status == 202, started.text
    bulk_id = started.json["bulkOperationId"]
    assert started.headers["Location"] == f"/bulk-operations/{bulk_id}"
    assert started.json["state"] == "BULK_OPERATION_STATE_RUNNING"
    assert started.json["matched"] == "30"  # int64: a string in proto3 JSON
    again = await http.post("/bulk-operations", json=job)  # the same request_id re-attaches
    assert again.status == 202 and again.json["bulkOperationId"] == bulk_id

    assert http.session is not None
    async with http.session.get(f"/bulk-operations/{bulk_id}/events") as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/event-stream")
        first = [e async for e in read_events(r, limit=5)]
    assert {e.event for e in first} == {"progress"}
    assert all(not e.data.get("final") for e in first)
    # At least four a second (the watch sends one every 0.1 s, and after every page).
    assert (first[-1].at - first[0].at) <= 4 * 1.0 / 4 + 0.5
    seen = first[-1].id

    headers = {"Last-Event-ID": seen}
    async with http.session.get(f"/bulk-operations/{bulk_id}/events", headers=headers) as r:
        rest = [e async for e in read_events(r)]
    assert rest and rest[0].id != seen  # the snapshot the client has is not sent again
    processed = [int(e.data.get("processed", 0)) for e in first + rest]
    assert processed == sorted(processed)  # counts only grow
    final = rest[-1]
    assert final.data["final"] is True and final.id.endswith(".final")
    assert final.data["state"] == "BULK_OPERATION_STATE_COMPLETED"
    assert final.data["processed"] == final.data["succeeded"] == "30"
    gaps = [b.at - a.at for a, b in itertools.pairwise(rest)]
    assert len(rest) >= 4 * (rest[-1].at - rest[0].at) - 1, gaps

    # A client that has the final snapshot is told to stop reconnecting.
    done = await http.get(f"/bulk-operations/{bulk_id}/events", headers={"Last-Event-ID": final.id})
    assert done.status == 204
    # Without Last-Event-ID, a finished job's stream is its final snapshot alone.
    async with http.session.get(f"/bulk-operations/{bulk_id}/events") as r:
        [only] = [e async for e in read_events(r)]
    assert only.data == final.data

    detail = await http.get(f"/bulk-operations/{bulk_id}")
    assert detail.json == final.data
    listed = (await http.get("/bulk-operations?state=completed")).json["bulkOperations"]
    assert [b["bulkOperationId"] for b in listed] == [bulk_id]
    for inv_id in ids:
        assert (await client.get_invocation(inv_id)).HasField("cancelled_at")


async def test_stop_ends_the_job_and_its_stream(http, lab, client):
    ids = await _suspended(client, 20)
    started = await http.post(
        "/bulk-operations",
        json={"operation": "kill", "selector": {"invocationIds": ids}, "maxPerSecond": 2},
    )
    bulk_id = started.json["bulkOperationId"]
    assert http.session is not None
    async with http.session.get(f"/bulk-operations/{bulk_id}/events") as r:
        events = read_events(r)
        await anext(events)
        stopped = await http.post(f"/bulk-operations/{bulk_id}/stop")
        assert stopped.status == 200
        assert stopped.json["bulkOperation"]["state"] == "BULK_OPERATION_STATE_STOPPED"
        rest = [e async for e in events]
    assert rest[-1].data["final"] is True
    assert rest[-1].data["state"] == "BULK_OPERATION_STATE_STOPPED"
    assert int(rest[-1].data.get("processed", 0)) < 20
    running = (await http.get("/bulk-operations?state=running")).json
    assert running.get("bulkOperations", []) == []


async def test_a_dry_run_counts_and_changes_nothing(http, lab, client, db):
    ids = await _suspended(client, 3)
    before = await row_counts(db)
    answer = await http.post(
        "/bulk-operations",
        json={"operation": "kill", "selector": {"query": "Lab/nap"}, "dry_run": True},
    )
    assert answer.status == 200, answer.text
    assert answer.json["state"] == "BULK_OPERATION_STATE_DRY_RUN"
    assert answer.json["matched"] == "3"
    assert sorted(answer.json["sampleInvocationIds"]) == sorted(ids)
    assert "Location" not in answer.headers
    assert await row_counts(db) == before
    assert (await http.get("/bulk-operations")).json == {}


async def test_bad_bulk_requests_are_refused_and_change_nothing(http, lab, client, db):
    ids = await _suspended(client, 1)
    before = await row_counts(db)
    unknown_dp = "dp_" + "C" * 22
    for body, status, reason in (
        ({"operation": "cancel", "selector": {}}, 400, "EMPTY_SELECTOR"),
        ({"operation": "cancel"}, 400, "EMPTY_SELECTOR"),
        ({"operation": "resume", "selector": {"invocationIds": ids}, "deployment": unknown_dp},
         400, "DEPLOYMENT_NOT_FOUND"),
        ({"operation": "resume", "selector": {"invocationIds": ids}, "deployment": "dp_x"},
         400, "INVALID_DEPLOYMENT"),
        ({"operation": "cancel", "selector": {"invocationIds": ids}, "deployment": "latest"},
         400, "INVALID_ARGUMENT"),  # cancel takes no deployment
        ({"operation": "explode", "selector": {"invocationIds": ids}}, 400, "INVALID_ARGUMENT"),
        ({"selector": {"invocationIds": ids}}, 400, "INVALID_ARGUMENT"),
        ({"operation": "cancel", "selector": {"invocationIds": ["inv_1"]}}, 400, "MALFORMED_ID"),
        ({"operation": "cancel", "selector": {"query": "Lab//nap"}}, 400, "INVALID_SELECTOR"),
        ({"operation": "cancel", "selector": {"states": ["SLEEPING"]}}, 400, "INVALID_ARGUMENT"),
        ({"operation": "cancel", "selector": {"query": "Lab"}, "maxPerSecond": -1},
         400, "INVALID_ARGUMENT"),
    ):  # fmt: skip
        answer = await http.post("/bulk-operations", json=body)
        answer.error(status, reason)
    assert (await http.get("/bulk-operations/bulk_nope")).error(400, "MALFORMED_ID")
    unknown = "bulk_" + "D" * 22
    assert (await http.get(f"/bulk-operations/{unknown}")).error(404, "BULK_OPERATION_NOT_FOUND")
    assert (await http.get(f"/bulk-operations/{unknown}/events")).error(
        404, "BULK_OPERATION_NOT_FOUND"
    )
    assert (await http.post(f"/bulk-operations/{unknown}/stop")).error(
        404, "BULK_OPERATION_NOT_FOUND"
    )
    assert await row_counts(db) == before
    assert (await client.get_invocation(ids[0])).state == pb.INVOCATION_STATE_SUSPENDED
