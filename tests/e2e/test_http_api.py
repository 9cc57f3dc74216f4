"""invoctl's own HTTP routes: list with every filter and keyset paging, get, journal,
invoke (call and send, idempotency key, delay, headers), attach with a timeout, audit and
deployments. Bodies are the proto3 JSON of the gRPC API's messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from google.protobuf import json_format

from invoctl.v1 import control_pb2, ingress_pb2
from invoctl.v1 import invocation_pb2 as pb
from tests.e2e._helpers import wait_state
from tests.e2e._operator import UNKNOWN_ID, S


def _ids(answer) -> list[str]:
    return [i["id"] for i in answer.json.get("invocations", [])]


async def test_list_filters_and_pages_like_list_invocations(http, lab, client):
    done = await lab.make(S.INVOCATION_STATE_COMPLETED)
    suspended = [await lab.make(S.INVOCATION_STATE_SUSPENDED) for _ in range(3)]
    killed = await lab.make(S.INVOCATION_STATE_SUSPENDED)
    await client.kill_invocation(killed)
    keyed = await client.send("Lab", "echo", 1, idempotency_key="order-7")
    await wait_state(client, keyed, S.INVOCATION_STATE_COMPLETED)

    answer = await http.get("/invocations?service=Lab&handler=nap&state=suspended")
    assert answer.status == 200
    assert _ids(answer) == sorted(suspended, reverse=True)  # newest first
    # The same request over gRPC answers the same (one implementation).
    grpc_page = await client._control.ListInvocations(
        control_pb2.ListInvocationsRequest(
            service="Lab", handler="nap", states=[S.INVOCATION_STATE_SUSPENDED]
        )
    )
    assert answer.json == json_format.MessageToDict(grpc_page)

    assert _ids(await http.get("/invocations?outcome=killed")) == [killed]
    assert _ids(await http.get("/invocations?outcome=OUTCOME_KILLED")) == [killed]
    assert _ids(await http.get("/invocations?idempotency_key=order-7")) == [keyed]
    both = await http.get("/invocations?state=completed,suspended&service=Lab&handler=nap")
    assert set(_ids(both)) == {*suspended, killed}
    repeated = await http.get("/invocations?state=suspended&state=INVOCATION_STATE_COMPLETED")
    assert set(_ids(repeated)) >= {*suspended, killed, done}

    created = (await client.get_invocation(suspended[1])).created_at.ToDatetime(tzinfo=UTC)
    after = quote(created.isoformat())
    newer = _ids(await http.get(f"/invocations?created_after={after}&handler=nap"))
    assert newer == [suspended[2], suspended[1]] or newer[-1] == suspended[1]
    older = _ids(await http.get(f"/invocations?created_before={after}&handler=nap"))
    assert suspended[0] in older and suspended[1] not in older
    naive = (created + timedelta(hours=1)).replace(tzinfo=None).isoformat()
    assert _ids(await http.get(f"/invocations?created_after={naive}")) == []

    deployment = (await client.get_invocation(done)).deployment_id
    pinned = _ids(await http.get(f"/invocations?deployment={deployment}&page_size=1000"))
    assert done in pinned

    # Keyset paging: pages of 2 walk every invocation once, newest first.
    seen, token = [], ""
    while True:
        page = await http.get(f"/invocations?page_size=2&page_token={token}")
        seen += _ids(page)
        token = page.json.get("nextPageToken", "")
        if not token:
            break
    everything = _ids(await http.get("/invocations?page_size=1000"))
    assert seen == everything and len(seen) == len(set(seen)) >= 6


async def test_get_and_journal_are_the_rpcs_responses(http, lab, client):
    inv_id = await lab.make(S.INVOCATION_STATE_SUSPENDED)
    got = await http.get(f"/invocations/{inv_id}")
    request = control_pb2.GetInvocationRequest(invocation_id=inv_id)
    rpc = await client._control.GetInvocation(request)
    assert got.json == json_format.MessageToDict(rpc)
    assert got.json["invocation"]["state"] == "INVOCATION_STATE_SUSPENDED"
    journal = (await http.get(f"/invocations/{inv_id}/journal")).json
    assert [e["kind"] for e in journal["entries"]] == ["JOURNAL_ENTRY_KIND_SLEEP"]
    assert journal["transitions"][0]["event"] == "accepted"
    assert (await http.get(f"/invocations/{UNKNOWN_ID}/journal")).error(404, "INVOCATION_NOT_FOUND")


async def test_invoke_calls_and_sends_with_key_delay_and_headers(http, lab, client):
    call = await http.post(
        "/invocations",
        json={"target": {"service": "Lab", "handler": "echo"}, "input": '{"n": 1}',
              "headers": {"x-trace": "t1"}},
    )  # fmt: skip
    assert call.status == 200, call.text
    assert call.json["invocation"]["output"] == '{"n": 1}'
    assert call.json["invocation"]["headers"] == {"x-trace": "t1"}

    send = {
        "target": {"service": "Lab", "handler": "echo"}, "input": '"later"',
        "idempotencyKey": "k-1", "delay": "3600s", "mode": "INVOKE_MODE_SEND",
    }  # fmt: skip
    first = await http.post("/invocations", json=send)
    assert first.status == 202, first.text
    inv_id = first.json["invocationId"]
    assert first.headers["Location"] == f"/invocations/{inv_id}"
    assert first.json["invocation"]["state"] == "INVOCATION_STATE_SCHEDULED"
    again = await http.post("/invocations", json=send)
    assert again.json["invocationId"] == inv_id and again.json["deduplicated"] is True

    missing = await http.post("/invocations", json={"target": {"service": "Nope", "handler": "x"}})
    assert missing.error(404, "SERVICE_NOT_FOUND")
    bad = await http.post("/invocations", json={"target": {"service": "Lab", "handler": "echo"},
                                                "input": "{not json"})  # fmt: skip
    assert bad.error(400, "INVALID_JSON")


async def test_output_waits_for_the_result_within_a_timeout(http, lab, client):
    done = await lab.make(S.INVOCATION_STATE_COMPLETED)
    answer = await http.get(f"/invocations/{done}/output?timeout=5")
    assert answer.status == 200 and answer.json["invocation"]["output"] == '"done"'
    rpc = await client._ingress.Attach(ingress_pb2.AttachRequest(invocation_id=done))
    assert answer.json == json_format.MessageToDict(rpc)

    waiting = await lab.make(S.INVOCATION_STATE_SUSPENDED)
    late = await http.get(f"/invocations/{waiting}/output?timeout=0.2")
    assert late.error(504, "NOT_COMPLETED_IN_TIME")["metadata"] == {
        "invocation_id": waiting, "timeout": "0.2",
    }  # fmt: skip
    for bad in ("0", "-1", "abc", "nan", "99999"):
        assert (await http.get(f"/invocations/{waiting}/output?timeout={bad}")).error(
            400, "INVALID_ARGUMENT"
        )
    assert (await client.get_invocation(waiting)).state == S.INVOCATION_STATE_SUSPENDED


async def test_audit_and_deployments(http, lab, client):
    inv_id = await lab.make(S.INVOCATION_STATE_SUSPENDED)
    await http.patch(f"/invocations/{inv_id}/kill?reason=cleanup")
    entries = (await http.get(f"/audit?invocation_id={inv_id}")).json["entries"]
    assert [(e["operation"], e["reason"], e["result"], e["stateAfter"]) for e in entries] == [
        ("KillInvocation", "cleanup", "OK", "INVOCATION_STATE_COMPLETED")
    ]
    await http.patch(f"/invocations/{inv_id}/kill")  # refused, and audited too
    first = await http.get("/audit?page_size=1")
    assert len(first.json["entries"]) == 1 and first.json.get("nextPageToken")
    assert (await http.get("/audit?page_token=zzz")).error(400, "INVALID_PAGE_TOKEN")
    # Filtered by the server: identity, a word of the operation, a time range.
    both = (await http.get(f"/audit?invocation_id={inv_id}")).json["entries"]
    assert [e["result"] for e in both] == ["INVALID_STATE_TRANSITION", "OK"], both
    at = both[0]["at"]  # the refused one, the newer
    after = (await http.get("/audit", params={"after": at, "operation": "kill"})).json
    assert [e["result"] for e in after["entries"]] == ["INVALID_STATE_TRANSITION"]
    before = (await http.get("/audit", params={"before": at, "identity": "anonymous"})).json
    assert "INVALID_STATE_TRANSITION" not in [e["result"] for e in before["entries"]]
    assert "OK" in [e["result"] for e in before["entries"]]
    assert (await http.get("/audit?identity=nobody")).json.get("entries", []) == []
    assert (await http.get("/audit?operation=pause")).json.get("entries", []) == []
    assert (await http.get("/audit?after=yesterday")).error(400, "INVALID_ARGUMENT")

    deployments = (await http.get("/deployments")).json["deployments"]
    pinned = (await client.get_invocation(inv_id)).deployment_id
    [lab_dep] = [d for d in deployments if d["id"] == pinned]
    assert {s["name"] for s in lab_dep["services"]} == {"Lab", "LabKey"}
    assert lab_dep["sessions"], "the lab worker is connected"
    only = (await http.get("/deployments?service=LabIdle")).json["deployments"]
    assert [s["name"] for d in only for s in d["services"]] == ["LabIdle"]


async def test_list_refuses_bad_filters(http):
    for query, reason in (
        ("state=sleeping", "INVALID_ARGUMENT"),
        ("outcome=won", "INVALID_ARGUMENT"),
        ("deployment=dp_nope", "INVALID_DEPLOYMENT"),
        ("created_before=yesterday", "INVALID_ARGUMENT"),
        ("page_size=-1", "INVALID_ARGUMENT"),
        ("page_size=ten", "INVALID_ARGUMENT"),
        ("page_token=abc", "INVALID_PAGE_TOKEN"),
        ("servce=Lab", "INVALID_ARGUMENT"),
    ):
        assert (await http.get(f"/invocations?{query}")).error(400, reason), query


async def test_json_uses_proto3_names_and_enum_names(http, lab):
    inv_id = await lab.make(S.INVOCATION_STATE_COMPLETED)
    inv = (await http.get(f"/invocations/{inv_id}")).json["invocation"]
    parsed = json_format.ParseDict(inv, pb.Invocation())  # reads back as the message
    assert parsed.id == inv_id and parsed.outcome == pb.OUTCOME_SUCCEEDED
    assert "createdAt" in inv and "created_at" not in inv
    assert datetime.fromisoformat(inv["createdAt"]).tzinfo is not None
