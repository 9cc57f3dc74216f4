"""GET /openapi: an OpenAPI 3.1 document that lists exactly the routes the server serves,
each of which answers (no 404 or 405 from the router), with every schema it names."""

from __future__ import annotations

import re

from invoctl_server.domain.ids import new_bulk_operation_id, new_invocation_id
from tests.e2e._operator import UNKNOWN_ID

METHODS = {"get", "post", "patch", "delete", "put", "options", "head"}


def _refs(node) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if "$ref" in node else set()
        return found.union(*(_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()


async def test_the_document_lists_exactly_the_served_routes(http, server):
    doc = (await http.get("/openapi")).json
    assert doc["openapi"] == "3.1.0" and doc["info"]["title"]
    documented = {
        (method.upper(), path)
        for path, ops in doc["paths"].items()
        for method in ops
        if method in METHODS
    }
    assert documented == server.http_routes
    # Restate's routes are all there, as Restate spells them.
    for action in ("cancel", "kill", "pause", "resume", "purge", "purge-journal",
                   "restart-as-new"):  # fmt: skip
        assert ("PATCH", f"/invocations/{{invocation_id}}/{action}") in documented
        assert ("POST", f"/internal/invocations_batch_operations/{action}") in documented
    schemas = doc["components"]["schemas"]
    for ref in _refs(doc):
        assert ref.removeprefix("#/components/schemas/") in schemas, ref
    assert set(schemas["invoctl.v1.Invocation"]["properties"]) >= {"id", "state", "createdAt"}
    ids = {op["operationId"] for ops in doc["paths"].values() for op in ops.values()}
    assert len(ids) == len(documented)  # unique operation IDs


async def test_every_documented_route_is_served(http):
    doc = (await http.get("/openapi")).json
    for path, ops in doc["paths"].items():
        concrete = re.sub(r"{bulk_operation_id}", "bulk_" + "A" * 22, path)
        concrete = re.sub(r"{invocation_id}", UNKNOWN_ID, concrete)
        for method, op in ops.items():
            query = "?timeout=0.1" if concrete.endswith("/output") else ""
            answer = await http.request(method.upper(), concrete + query, json={})
            assert answer.status != 405, (method, path, answer.text)
            if answer.status == 404:
                assert answer.json["reason"] != "ROUTE_NOT_FOUND", (method, path)
            for p in op["parameters"]:
                assert p["in"] in ("path", "query")


async def test_id_parameters_match_new_and_old_ids(http):
    doc = (await http.get("/openapi")).json
    examples = {
        "invocation_id": [new_invocation_id(), "inv_-P7llqQesR0pczet9Dmh2-"],
        "bulk_operation_id": [new_bulk_operation_id(), "bulk_-P7llqQesR0pczet9Dmh2-"],
    }
    seen = set()
    for ops in doc["paths"].values():
        for op in ops.values():
            for p in op["parameters"]:
                if p["in"] == "path" and p["name"] in examples:
                    seen.add(p["name"])
                    for example in examples[p["name"]]:
                        assert re.fullmatch(p["schema"]["pattern"], example), (p, example)
                    assert not re.fullmatch(p["schema"]["pattern"], "inv_123")
    assert seen == set(examples)
