"""Bad input over HTTP gets a clear JSON error and changes nothing: malformed IDs, unknown
routes (404), wrong methods (405 with Allow), bodies that are not JSON or are too large
(400/413), unknown deployments, empty bulk selectors, unknown parameters, and clients that
disconnect mid-request. Never a stack trace, never a 500 for input."""

from __future__ import annotations

import asyncio
import json
import logging
from urllib.parse import urlsplit

import pytest

from tests.e2e._helpers import row_counts
from tests.e2e._operator import S

LONG = "inv_" + "x" * 10_000


@pytest.fixture
def errors_logged(caplog):
    """The ERROR records the server logs during the test."""
    caplog.set_level(logging.ERROR)
    return lambda: [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_malformed_ids_on_every_route_that_takes_one(http, db):
    before = await row_counts(db)
    for path in (
        "/invocations/not-an-id", "/invocations/inv_123/journal", "/invocations/inv_1/output",
        f"/invocations/{LONG}", "/bulk-operations/bulk_1", "/bulk-operations/inv_x/events",
    ):  # fmt: skip
        body = (await http.get(path)).error(400, "MALFORMED_ID")
        assert all(len(v) <= 200 for v in body["metadata"].values())  # echoes are clipped
    assert (await http.post("/bulk-operations/x/stop")).error(400, "MALFORMED_ID")
    assert (await http.delete("/invocations/%20?mode=kill")).error(400, "MALFORMED_ID")
    assert await row_counts(db) == before


async def test_unknown_routes_are_404_and_wrong_methods_405_with_allow(http):
    # (/ui is the web console now; /uix is not it.)
    for path in ("/", "/nope", "/invocations/inv_x/explode", "/uix", "/query"):
        (await http.get(path)).error(404, "ROUTE_NOT_FOUND")
    for method, path, allow in (
        ("PUT", "/invocations", "GET, HEAD, POST"),
        ("POST", "/invocations/inv_x", "GET, HEAD, DELETE"),
        ("GET", "/invocations/inv_x/kill", "PATCH"),
        ("POST", "/invocations/inv_x/cancel", "PATCH"),
        ("OPTIONS", "/invocations/inv_x/cancel", "PATCH"),  # no CORS unless configured
        ("GET", "/internal/invocations_batch_operations/kill", "POST"),
        ("DELETE", "/bulk-operations", "GET, HEAD, POST"),
    ):
        answer = await http.request(method, path)
        answer.error(405, "METHOD_NOT_ALLOWED")
        assert set(answer.headers["Allow"].split(", ")) == set(allow.split(", ")), path
        assert "access-control-allow-origin" not in answer.headers


async def test_bodies_that_are_not_json_objects_are_400(http, db):
    before = await row_counts(db)
    for raw in (b"{not json", b"[1, 2]", b'"text"', b"\xff\xfe", b"[" * 100_000):
        answer = await http.post("/invocations", data=raw)
        assert answer.error(400, "INVALID_JSON")["metadata"] == {"field": "body"}
    for body, what in (
        ({"target": "Greeter"}, "target"),
        ({"target": {"service": "Lab", "handler": "echo"}, "mode": "SEND"}, "mode"),
        ({"target": {"service": "Lab", "handler": "echo"}, "delay": "soon"}, "delay"),
        ({"target": {"service": "Lab", "handler": "echo"}, "surprise": 1}, "surprise"),
    ):
        message = (await http.post("/invocations", json=body)).error(400, "INVALID_ARGUMENT")
        assert what in message["message"], message
    assert (await http.patch("/invocations/inv_x/kill", data=b"{")).error(400, "INVALID_JSON")
    assert await row_counts(db) == before


async def test_too_large_bodies_are_413_declared_or_streamed(http, server, db):
    before = await row_counts(db)
    limit = server.config.max_message_bytes
    huge = b'{"input": "' + b"x" * limit + b'"}'
    answer = await http.post("/invocations", data=huge)
    assert answer.error(413, "PAYLOAD_TOO_LARGE")["metadata"]["limit"] == str(limit)

    async def chunks():  # no Content-Length: chunked, counted as it arrives
        for _ in range(limit // 65536 + 2):
            yield b"x" * 65536

    (await http.post("/invocations", data=chunks())).error(413, "PAYLOAD_TOO_LARGE")
    # An input under the body limit but over the payload limit is the RPC's own refusal.
    big_input = {"target": {"service": "Lab", "handler": "echo"},
                 "input": '"' + "y" * server.config.max_payload_bytes + '"'}  # fmt: skip
    (await http.post("/invocations", json=big_input)).error(413, "PAYLOAD_TOO_LARGE")
    assert await row_counts(db) == before
    assert (await http.get("/health")).status == 200


async def test_an_input_at_the_limit_fits_in_a_body_however_it_is_escaped(http, server, lab):
    # A body quotes the input as a JSON string: each quote of it doubles. An input within
    # the payload limit must still fit in a body (the body limit was the payload's + 64 KiB).
    limit = server.config.max_payload_bytes
    text = json.dumps('"' * ((limit - 2) // 2))  # each quote escaped once in the input...
    assert len(text) <= limit
    body = {"target": {"service": "Lab", "handler": "echo"}, "input": text,
            "mode": "INVOKE_MODE_SEND"}  # fmt: skip
    assert len(json.dumps(body)) > 2 * limit  # ...and twice more in the body
    answer = await http.post("/invocations", json=body)
    assert answer.status == 202, answer.text[:300]


async def test_unknown_parameters_and_deployments_change_nothing(http, lab, client):
    inv_id = await lab.make(S.INVOCATION_STATE_PAUSED)
    typo = await http.patch(f"/invocations/{inv_id}/resume?deploymnet=latest")
    assert typo.error(400, "INVALID_ARGUMENT")["metadata"] == {"parameter": "deploymnet"}
    unknown = "dp_" + "Z" * 22
    (await http.patch(f"/invocations/{inv_id}/resume?deployment={unknown}")).error(
        400, "DEPLOYMENT_NOT_FOUND"
    )
    (await http.post("/bulk-operations", json={"operation": "resume", "selector": {}})).error(
        400, "EMPTY_SELECTOR"
    )
    assert (await client.get_invocation(inv_id)).state == S.INVOCATION_STATE_PAUSED


async def test_odd_input_is_never_a_500(http, errors_logged):
    paths = [
        "/invocations/%00", "/invocations/inv_%E2%98%83/kill", f"/invocations?service={'%' * 3}",
        "/invocations?state=%00", "/invocations?created_after=9999-99-99",
        "/invocations?page_size=99999999999999999999", "/invocations?service=" + "a" * 10_000,
        "/audit?invocation_id=%27%3B--", "/audit?page_token=%00", "/deployments?service=%00",
        "/invocations/inv_aaaaaaaaaaaaaaaaaaaaaa/output?timeout=inf",
        "/bulk-operations?state=%22", "/invocations?outcome=",
    ]  # fmt: skip
    for path in paths:
        answer = await http.get(path)
        assert answer.status < 500, (path, answer.status, answer.text)
        assert "Traceback" not in answer.text
        assert isinstance(answer.json, dict)  # JSON, not a plain-text page
    for body in ({"operation": None}, {"operation": "kill", "selector": {"query": "\x00"}},
                 {"operation": "kill", "selector": {"service": "a" * 10_000}}):  # fmt: skip
        answer = await http.post("/bulk-operations", json=body)
        assert answer.status < 500, (body, answer.text)
    assert errors_logged() == []


async def _raw(url: str, data: bytes) -> asyncio.StreamWriter:
    parts = urlsplit(url)
    _, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(data)
    await writer.drain()
    return writer


async def test_a_client_that_disconnects_mid_body_changes_nothing(http, server, db, errors_logged):
    before = await row_counts(db)
    writer = await _raw(
        server.http_url,
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 1000\r\n\r\n{"target": {"service": "Lab", ',
    )
    writer.close()
    await writer.wait_closed()
    assert (await http.get("/health")).status == 200
    assert await row_counts(db) == before
    assert errors_logged() == []


async def test_a_client_that_disconnects_while_it_waits_is_let_go(
    http, lab, server, client, errors_logged
):
    inv_id = await lab.make(S.INVOCATION_STATE_SUSPENDED)
    writer = await _raw(
        server.http_url, f"GET /invocations/{inv_id}/output HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    )
    writer.close()
    await writer.wait_closed()
    for _ in range(20):  # the server goes on serving while it notices
        assert (await http.get("/health")).status == 200
    assert (await client.get_invocation(inv_id)).state == S.INVOCATION_STATE_SUSPENDED
    assert (await http.patch(f"/invocations/{inv_id}/kill")).status == 200
    assert errors_logged() == []
