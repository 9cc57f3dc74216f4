"""Restate's admin routes (../shared/RESTATE-ADMIN-API.md): every action's status codes
in every state, Restate's parameters, the deprecated DELETE, and the batch route of
Restate's UI. Each action goes through the operator path: audited and traced."""

from __future__ import annotations

import pytest

from invoctl.v1 import invocation_pb2 as pb
from tests.e2e._helpers import row_counts
from tests.e2e._operator import ALL_STATES, MALFORMED_IDS, UNKNOWN_ID, S

ACTIONS = ("cancel", "kill", "pause", "resume", "purge", "purge-journal", "restart-as-new")
PENDING, SCHEDULED, READY = (
    S.INVOCATION_STATE_PENDING, S.INVOCATION_STATE_SCHEDULED, S.INVOCATION_STATE_READY,
)  # fmt: skip
RUNNING, BACKING_OFF, SUSPENDED = (
    S.INVOCATION_STATE_RUNNING, S.INVOCATION_STATE_BACKING_OFF, S.INVOCATION_STATE_SUSPENDED,
)  # fmt: skip
PAUSED, COMPLETED = S.INVOCATION_STATE_PAUSED, S.INVOCATION_STATE_COMPLETED

# Restate's status for each action in each state (RESTATE-ADMIN-API.md and
# RESTATE-BEHAVIOUR.md; where invoctl deliberately differs, as its DESIGN.md says: pause
# of a suspended invocation is refused, and a ready one that never started cannot be
# resumed).
EXPECTED: dict[str, dict[int, int]] = {
    "cancel": {PENDING: 200, SCHEDULED: 200, READY: 200, RUNNING: 202, BACKING_OFF: 202,
               SUSPENDED: 202, PAUSED: 202, COMPLETED: 409},
    "kill": {s: 200 for s in ALL_STATES} | {COMPLETED: 409},
    "pause": {PENDING: 409, SCHEDULED: 409, READY: 409, RUNNING: 202, BACKING_OFF: 202,
              SUSPENDED: 409, PAUSED: 200, COMPLETED: 409},
    "resume": {PENDING: 425, SCHEDULED: 425, READY: 409, RUNNING: 409, BACKING_OFF: 200,
               SUSPENDED: 200, PAUSED: 200, COMPLETED: 409},
    "purge": {s: 409 for s in ALL_STATES} | {PENDING: 425, SCHEDULED: 425, COMPLETED: 200},
    "purge-journal": {s: 409 for s in ALL_STATES} | {PENDING: 425, SCHEDULED: 425,
                                                      COMPLETED: 200},
    "restart-as-new": {s: 409 for s in ALL_STATES} | {PENDING: 425, SCHEDULED: 425,
                                                       COMPLETED: 200},
}  # fmt: skip


@pytest.mark.parametrize("action", ACTIONS)
async def test_each_action_answers_restates_status_in_every_state(http, lab, client, action):
    for state in ALL_STATES:
        inv_id = await lab.make(state)
        answer = await http.patch(f"/invocations/{inv_id}/{action}")
        want = EXPECTED[action][state]
        assert answer.status == want, (action, state, answer.status, answer.text)
        body = answer.json
        if want >= 400:
            reason = "INVALID_STATE_TRANSITION"
            assert answer.error(want, reason)["metadata"]["invocation_id"] == inv_id
            continue
        if action == "purge":
            assert body["invocation"]["id"] == inv_id
            assert not [i for i in (await client.list_invocations())[0] if i.id == inv_id]
        elif action == "restart-as-new":
            new_id = body["new_invocation_id"]
            assert new_id != inv_id and body["invocation"]["id"] == new_id
            assert (await client.get_invocation(new_id)).restarted_from == inv_id
        else:
            # The body is the RPC's response: the invocation after the action.
            after = await client.get_invocation(inv_id)
            assert body["invocation"]["id"] == inv_id
            if action == "kill":
                assert after.outcome == pb.OUTCOME_KILLED
            if action == "cancel" and want == 200:
                assert after.outcome == pb.OUTCOME_CANCELLED
            if action == "cancel" and want == 202:
                assert after.HasField("cancelled_at")
            if action == "pause":
                assert after.state == PAUSED


async def test_unknown_and_malformed_ids_are_404_and_400_and_audited(http, op):
    for action in ACTIONS:
        answer = await http.patch(f"/invocations/{UNKNOWN_ID}/{action}")
        assert answer.error(404, "INVOCATION_NOT_FOUND")["metadata"] == {
            "invocation_id": UNKNOWN_ID
        }
        for bad in MALFORMED_IDS:
            answer = await http.patch(f"/invocations/{bad}/{action}")
            assert answer.error(400, "MALFORMED_ID")["code"] == "INVALID_ARGUMENT"
    results = {(e.operation, e.result) for e in await op.audit()}
    assert ("KillInvocation", "INVOCATION_NOT_FOUND") in results
    assert ("RestartInvocationAsNew", "MALFORMED_ID") in results


async def test_resume_takes_restates_deployment_spellings(http, lab, client):
    deployment = (await client.get_invocation(await lab.make(PAUSED))).deployment_id
    for spelling in ("latest", "Latest", "keep", "Keep", deployment):
        inv_id = await lab.make(PAUSED)
        answer = await http.patch(f"/invocations/{inv_id}/resume?deployment={spelling}")
        assert answer.status == 200, (spelling, answer.text)
        assert answer.json["invocation"]["deploymentId"] == deployment
    inv_id = await lab.make(PAUSED)
    unknown = "dp_" + "B" * 22
    answer = await http.patch(f"/invocations/{inv_id}/resume?deployment={unknown}")
    assert answer.error(400, "DEPLOYMENT_NOT_FOUND")["metadata"] == {"deployment_id": unknown}
    answer = await http.patch(f"/invocations/{inv_id}/resume?deployment=newest")
    assert answer.error(400, "INVALID_DEPLOYMENT")["metadata"] == {"deployment_id": "newest"}
    assert (await client.get_invocation(inv_id)).state == PAUSED  # changed nothing


async def test_restart_as_new_from_a_prefix_and_refusals(http, lab, client, server):
    done = await lab.make(COMPLETED)  # Lab/echo: input entry only
    answer = await http.patch(f"/invocations/{done}/restart-as-new?from=0&deployment=keep")
    assert answer.status == 200 and answer.json["new_invocation_id"].startswith("inv_")
    for bad in ("-1", "x", "4294967296", "1.5"):
        answer = await http.patch(f"/invocations/{done}/restart-as-new?from={bad}")
        assert answer.error(400, "INVALID_ARGUMENT")
    answer = await http.patch(f"/invocations/{done}/restart-as-new?from=99")
    assert answer.error(400, "INVALID_FROM_ENTRY")
    assert (await http.patch(f"/invocations/{done}/purge-journal")).status == 200
    answer = await http.patch(f"/invocations/{done}/restart-as-new")
    assert answer.error(410, "JOURNAL_PURGED")  # Restate: 410, input purged


async def test_reason_and_request_id_reach_the_audit_log(http, lab, op):
    inv_id = await lab.make(SUSPENDED)
    path = f"/invocations/{inv_id}/kill?reason=order%20withdrawn&request_id=r-http-1"
    first = await http.patch(path)
    again = await http.patch(path)  # a retry: the first answer, acted once
    assert first.status == again.status == 200 and first.json == again.json
    entries = [e for e in await op.audit(inv_id) if e.operation == "KillInvocation"]
    assert [(e.reason, e.request_id, e.result, e.identity) for e in entries] == [
        ("order withdrawn", "r-http-1", "OK", "anonymous")
    ]
    # The body form of the same request message works too (proto3 JSON).
    other = await lab.make(SUSPENDED)
    answer = await http.patch(f"/invocations/{other}/cancel", json={"reason": "in the body"})
    assert answer.status == 202
    [entry] = [e for e in await op.audit(other) if e.operation == "CancelInvocation"]
    assert entry.reason == "in the body"
    answer = await http.patch(f"/invocations/{other}/cancel", json={"invocationId": UNKNOWN_ID})
    assert answer.error(400, "INVALID_ARGUMENT")


async def test_transitions_made_over_http_have_the_operator_actor(http, lab, client):
    inv_id = await lab.make(SUSPENDED)
    assert (await http.patch(f"/invocations/{inv_id}/kill")).status == 200
    journal = await client.get_journal(inv_id)
    assert journal.transitions[-1].actor == "operator:anonymous"
    assert journal.transitions[-1].event == "killed"


@pytest.mark.parametrize("mode", ["cancel", "Kill", "purge"])
async def test_delete_with_a_mode_is_202_and_unknown_ids_are_404(http, lab, client, mode):
    inv_id = await lab.make(COMPLETED if mode == "purge" else SUSPENDED)
    answer = await http.delete(f"/invocations/{inv_id}?mode={mode}")
    assert answer.status == 202, answer.text
    if mode == "Kill":
        assert (await client.get_invocation(inv_id)).outcome == pb.OUTCOME_KILLED
    if mode == "purge":
        assert (await http.get(f"/invocations/{inv_id}")).status == 404
    # Restate answers 202 for an unknown ID too; a real 404 is more use.
    assert (await http.delete(f"/invocations/{UNKNOWN_ID}?mode={mode}")).status == 404
    assert (await http.delete(f"/invocations/{inv_id}?mode=explode")).error(400, "INVALID_ARGUMENT")


async def test_delete_without_a_mode_cancels(http, lab, client):
    inv_id = await lab.make(SUSPENDED)
    assert (await http.delete(f"/invocations/{inv_id}")).status == 202
    assert (await client.get_invocation(inv_id)).HasField("cancelled_at")


async def test_batch_operations_as_restates_ui_calls_them(http, lab, client):
    suspended = [await lab.make(SUSPENDED) for _ in range(3)]
    done = await lab.make(COMPLETED)
    answer = await http.post(
        "/internal/invocations_batch_operations/kill",
        json={"invocation_ids": [*suspended, done, UNKNOWN_ID]},
    )
    assert answer.status == 200, answer.text
    body = answer.json
    assert body["succeeded"] == suspended
    assert [(f["invocation_id"], f["reason"]) for f in body["failed"]] == [
        (done, "INVALID_STATE_TRANSITION"), (UNKNOWN_ID, "INVOCATION_NOT_FOUND"),
    ]  # fmt: skip
    assert all(f["error"] for f in body["failed"])
    for inv_id in suspended:
        assert (await client.get_invocation(inv_id)).outcome == pb.OUTCOME_KILLED

    answer = await http.post(
        "/internal/invocations_batch_operations/restart-as-new",
        json={"invocation_ids": [done], "deployment": "latest"},
    )
    [pair] = answer.json["succeeded"]
    assert pair["old_invocation_id"] == done and pair["new_invocation_id"].startswith("inv_")

    paused = await lab.make(PAUSED)
    answer = await http.post(
        "/internal/invocations_batch_operations/resume",
        json={"invocation_ids": [paused], "deployment": "Keep"},
    )
    assert answer.json == {"succeeded": [paused], "failed": []}


async def test_batch_limits_and_malformed_ids_change_nothing(http, lab, db):
    inv_id = await lab.make(SUSPENDED)
    before = await row_counts(db)
    route = "/internal/invocations_batch_operations/cancel"
    answer = await http.post(route, json={"invocation_ids": [inv_id] * 1001})
    assert answer.error(400, "INVALID_ARGUMENT")["metadata"] == {"limit": "1000"}
    # Restate refuses a body it cannot read as 422.
    answer = await http.post(route, json={"invocation_ids": [inv_id, "inv_123"]})
    assert answer.error(422, "MALFORMED_ID")
    answer = await http.post(route, json={"invocation_ids": "inv_x"})
    assert answer.error(400, "INVALID_ARGUMENT")
    answer = await http.post(route, json={"invocation_ids": [inv_id], "deployment": "latest"})
    assert answer.error(400, "INVALID_ARGUMENT")  # cancel takes no deployment
    unknown_op = await http.post("/internal/invocations_batch_operations/explode", json={})
    assert unknown_op.error(404, "ROUTE_NOT_FOUND")
    assert await row_counts(db) == before


async def test_cancel_of_a_running_invocation_is_202_and_signals_it(http, lab, client):
    inv_id = await lab.make(RUNNING)
    answer = await http.patch(f"/invocations/{inv_id}/cancel")
    assert answer.status == 202 and answer.json["invocation"]["state"] == "INVOCATION_STATE_RUNNING"
    assert (await client.get_invocation(inv_id)).HasField("cancelled_at")
