"""Access control over HTTP: the gRPC API's tokens and roles on every route (viewer
reads, operator acts, admin kills and purges), 401 with WWW-Authenticate: Bearer, 403 for
a role that may not, and the caller's identity in the audit log and the actors."""

from __future__ import annotations

import pytest

from invoctl.sdk import Context, Service, Worker
from tests.conftest import server_config
from tests.e2e._http import Http
from tests.e2e._operator import UNKNOWN_ID
from tests.e2e.test_auth import IDENTITY, TOKENS, tokens_config

BULK = "bulk_" + "A" * 22
BATCH = "/internal/invocations_batch_operations/"
# Every route with the roles that may use it, written from the issue (not from the
# server's tables, so that this test checks them).
VIEWER, OPERATOR, ADMIN = {"viewer", "operator", "admin"}, {"operator", "admin"}, {"admin"}
ROUTES: list[tuple[str, str, dict | None, set[str]]] = [
    ("GET", "/invocations", None, VIEWER),
    ("GET", f"/invocations/{UNKNOWN_ID}", None, VIEWER),
    ("GET", f"/invocations/{UNKNOWN_ID}/journal", None, VIEWER),
    ("GET", f"/invocations/{UNKNOWN_ID}/output?timeout=0.1", None, VIEWER),
    ("GET", "/audit", None, VIEWER),
    ("GET", "/deployments", None, VIEWER),
    ("GET", "/bulk-operations", None, VIEWER),
    ("GET", f"/bulk-operations/{BULK}", None, VIEWER),
    ("GET", f"/bulk-operations/{BULK}/events", None, VIEWER),
    ("POST", f"/bulk-operations/{BULK}/stop", None, OPERATOR),
    ("POST", "/invocations", {"target": {"service": "Nope", "handler": "x"}}, OPERATOR),
    ("PATCH", f"/invocations/{UNKNOWN_ID}/cancel", None, OPERATOR),
    ("PATCH", f"/invocations/{UNKNOWN_ID}/pause", None, OPERATOR),
    ("PATCH", f"/invocations/{UNKNOWN_ID}/resume", None, OPERATOR),
    ("PATCH", f"/invocations/{UNKNOWN_ID}/restart-as-new", None, OPERATOR),
    ("PATCH", f"/invocations/{UNKNOWN_ID}/kill", None, ADMIN),
    ("PATCH", f"/invocations/{UNKNOWN_ID}/purge", None, ADMIN),
    ("PATCH", f"/invocations/{UNKNOWN_ID}/purge-journal", None, ADMIN),
    ("DELETE", f"/invocations/{UNKNOWN_ID}?mode=cancel", None, OPERATOR),
    ("DELETE", f"/invocations/{UNKNOWN_ID}?mode=kill", None, ADMIN),
    ("DELETE", f"/invocations/{UNKNOWN_ID}?mode=purge", None, ADMIN),
    *(("POST", BATCH + op, {"invocation_ids": [UNKNOWN_ID]}, OPERATOR)
       for op in ("cancel", "pause", "resume", "restart-as-new")),
    *(("POST", BATCH + op, {"invocation_ids": [UNKNOWN_ID]}, ADMIN)
       for op in ("kill", "purge", "purge-journal")),
    *(("POST", "/bulk-operations", {"operation": op, "selector": {"query": "Nope"}}, OPERATOR)
       for op in ("cancel", "pause", "resume", "restart-as-new")),
    *(("POST", "/bulk-operations", {"operation": op, "selector": {"query": "Nope"}}, ADMIN)
       for op in ("kill", "purge")),
]  # fmt: skip


@pytest.fixture
async def secured(database):
    from invoctl_server.app import App

    app = await App.start(server_config(database, auth_tokens=tokens_config()))
    yield app
    await app.stop(grace=0)


@pytest.mark.parametrize(("method", "path", "body", "roles"), ROUTES,
                         ids=[f"{m} {p}" for m, p, _, _ in ROUTES])  # fmt: skip
async def test_every_route_admits_exactly_the_roles_it_should(secured, method, path, body, roles):
    async with Http(secured.http_url) as anonymous:
        refused = await anonymous.request(method, path, json=body)
        refused.error(401, "UNAUTHENTICATED")
        assert refused.headers["WWW-Authenticate"] == "Bearer"
    async with Http(secured.http_url, token="not-a-token") as unknown:
        (await unknown.request(method, path, json=body)).error(401, "UNAUTHENTICATED")
    for role, token in TOKENS.items():
        async with Http(secured.http_url, token=token) as h:
            answer = await h.request(method, path, json=body)
        if role in roles:
            assert answer.status not in (401, 403), (role, answer.status, answer.text)
        else:
            body403 = answer.error(403, "PERMISSION_DENIED")
            assert body403["metadata"]["identity"] == IDENTITY[role], body403


async def test_health_and_openapi_need_no_token(secured):
    async with Http(secured.http_url) as anonymous:
        assert (await anonymous.get("/health")).json == {"status": "SERVING"}
        assert (await anonymous.get("/openapi")).json["openapi"] == "3.1.0"
        # A route that does not exist is 404 whoever asks.
        (await anonymous.get("/nope")).error(404, "ROUTE_NOT_FOUND")


async def test_the_callers_identity_is_in_the_audit_log_and_the_actor(secured):
    svc = Service("Later")

    @svc.handler()
    async def run(ctx: Context) -> None:
        return None

    registering = Worker([svc], server=secured.address, token=TOKENS["worker"])
    await registering.register()
    await registering.stop()
    async with Http(secured.http_url, token=TOKENS["operator"]) as operator:
        sent = await operator.post(
            "/invocations",
            json={"target": {"service": "Later", "handler": "run"}, "delay": "3600s",
                  "mode": "INVOKE_MODE_SEND"},
        )  # fmt: skip
        assert sent.status == 202, sent.text
        inv_id = sent.json["invocationId"]
        (await operator.patch(f"/invocations/{inv_id}/kill")).error(403, "PERMISSION_DENIED")
    async with Http(secured.http_url, token=TOKENS["admin"]) as admin:
        assert (await admin.patch(f"/invocations/{inv_id}/kill?reason=tidy")).status == 200
        journal = (await admin.get(f"/invocations/{inv_id}/journal")).json
        entries = (await admin.get(f"/audit?invocation_id={inv_id}")).json["entries"]
    assert journal["transitions"][-1]["actor"] == f"operator:{IDENTITY['admin']}"
    assert [(e["identity"], e["operation"], e["result"]) for e in entries] == [
        (IDENTITY["admin"], "KillInvocation", "OK"),
        # Refused for its role, and recorded all the same (README: every request).
        (IDENTITY["operator"], "KillInvocation", "PERMISSION_DENIED"),
    ]


async def test_requests_refused_for_their_caller_are_in_the_audit_log(secured):
    # As over gRPC (test_auth.py): the refusals of the request path are audited too.
    async with Http(secured.http_url, token=TOKENS["operator"]) as operator:
        (await operator.request("PATCH", f"/invocations/{UNKNOWN_ID}/kill?reason=mine")).error(
            403, "PERMISSION_DENIED"
        )
        (await operator.request("DELETE", f"/invocations/{UNKNOWN_ID}?mode=purge")).error(
            403, "PERMISSION_DENIED"
        )
    async with Http(secured.http_url) as nobody:
        (await nobody.request("PATCH", f"/invocations/{UNKNOWN_ID}/cancel?request_id=r1")).error(
            401, "UNAUTHENTICATED"
        )
        (await nobody.request("GET", f"/invocations/{UNKNOWN_ID}")).error(401, "UNAUTHENTICATED")
    async with Http(secured.http_url, token=TOKENS["admin"]) as admin:
        entries = (await admin.request("GET", "/audit")).json["entries"]
    seen = [
        (e.get("identity", ""), e["operation"], e["invocationId"], e.get("reason", ""),
         e.get("requestId", ""), e["result"])
        for e in entries
    ]  # fmt: skip
    assert seen == [
        ("", "CancelInvocation", UNKNOWN_ID, "", "r1", "UNAUTHENTICATED"),
        (IDENTITY["operator"], "PurgeInvocation", UNKNOWN_ID, "", "", "PERMISSION_DENIED"),
        (IDENTITY["operator"], "KillInvocation", UNKNOWN_ID, "mine", "", "PERMISSION_DENIED"),
    ]
