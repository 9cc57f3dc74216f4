"""The OpenAPI 3.1 document of the HTTP API, built from the same route table as the
router, with the schemas of the request and response messages taken from their proto
descriptors (as the proto3 JSON mapping spells them)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from google.protobuf import descriptor_pool
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from .route import Route

_SCALARS: dict[int, dict[str, Any]] = {
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_DOUBLE: {"type": "number"},
    FieldDescriptor.TYPE_FLOAT: {"type": "number"},
    FieldDescriptor.TYPE_INT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_UINT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SINT32: {"type": "integer", "format": "int32"},
    # proto3 JSON writes 64-bit integers as strings and reads either.
    FieldDescriptor.TYPE_INT64: {"type": ["string", "integer"], "format": "int64"},
    FieldDescriptor.TYPE_UINT64: {"type": ["string", "integer"], "format": "int64"},
}
# Well-known types have JSON forms of their own.
_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "description": "seconds, e.g. 1.5s"},
}

# Schemas the routes name that are not messages.
_LOCAL: dict[str, dict[str, Any]] = {
    "Error": {
        "type": "object",
        "description": "Restate's error fields plus the gRPC code and google.rpc.ErrorInfo",
        "properties": {
            "message": {"type": "string"},
            "restate_code": {"type": ["string", "null"]},
            "code": {"type": "string", "description": "the gRPC code, e.g. NOT_FOUND"},
            "reason": {"type": "string", "description": "ErrorInfo reason"},
            "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
        },
        "required": ["message", "restate_code", "code", "reason", "metadata"],
    },
    "RestartedAsNew": {
        "allOf": [
            {"$ref": "#/components/schemas/invoctl.v1.RestartInvocationAsNewResponse"},
            {
                "type": "object",
                "properties": {"new_invocation_id": {"type": "string"}},
                "required": ["new_invocation_id"],
            },
        ]
    },
    "BatchRequest": {
        "type": "object",
        "properties": {
            "invocation_ids": {"type": "array", "items": {"type": "string"}, "maxItems": 1000},
            "deployment": {"type": "string", "description": "resume and restart-as-new"},
            "reason": {"type": "string"},
        },
        "required": ["invocation_ids"],
    },
    "BatchResult": {
        "type": "object",
        "properties": {
            "succeeded": {"type": "array", "items": {"type": "string"}},
            "failed": {"type": "array", "items": {"$ref": "#/components/schemas/BatchFailure"}},
        },
    },
    "BatchRestartResult": {
        "type": "object",
        "properties": {
            "succeeded": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "old_invocation_id": {"type": "string"},
                        "new_invocation_id": {"type": "string"},
                    },
                },
            },
            "failed": {"type": "array", "items": {"$ref": "#/components/schemas/BatchFailure"}},
        },
    },
    "BatchFailure": {
        "type": "object",
        "properties": {
            "invocation_id": {"type": "string"},
            "error": {"type": "string"},
            "reason": {"type": "string"},
        },
    },
    "BulkOperationRequest": {
        "type": "object",
        "description": "A bulk RPC's request (e.g. invoctl.v1.CancelInvocationsRequest) "
        "with the operation that picks it",
        "properties": {
            "operation": {
                "type": "string",
                "enum": ["cancel", "kill", "pause", "resume", "purge", "restart-as-new"],
            },
            "selector": {"$ref": "#/components/schemas/invoctl.v1.BulkSelector"},
            "reason": {"type": "string"},
            "dry_run": {"type": "boolean"},
            "max_per_second": {"type": "number"},
            "deployment": {"type": "string", "description": "resume and restart-as-new"},
            "request_id": {"type": "string"},
        },
        "required": ["operation", "selector"],
    },
    "EventStream": {
        "type": "string",
        "description": "text/event-stream of `progress` events, each an "
        "invoctl.v1.BulkOperationProgress",
    },
    "Health": {"type": "object", "properties": {"status": {"type": "string"}}},
    "OpenApi": {"type": "object"},
}


def _field(f: FieldDescriptor, pending: list[Descriptor]) -> dict[str, Any]:
    if f.message_type is not None and f.message_type.GetOptions().map_entry:
        value = f.message_type.fields_by_name["value"]
        return {"type": "object", "additionalProperties": _single(value, pending)}
    single = _single(f, pending)
    if f.is_repeated:
        return {"type": "array", "items": single}
    return single


def _single(f: FieldDescriptor, pending: list[Descriptor]) -> dict[str, Any]:
    if f.type == FieldDescriptor.TYPE_ENUM:
        return _enum(f.enum_type)
    if f.type == FieldDescriptor.TYPE_MESSAGE:
        name = f.message_type.full_name
        if name in _WELL_KNOWN:
            return dict(_WELL_KNOWN[name])
        pending.append(f.message_type)
        return {"$ref": f"#/components/schemas/{name}"}
    return dict(_SCALARS[f.type])


def _enum(e: EnumDescriptor) -> dict[str, Any]:
    return {"type": "string", "enum": [v.name for v in e.values]}


def _message(d: Descriptor, pending: list[Descriptor]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {f.json_name: _field(f, pending) for f in d.fields},
        "additionalProperties": False,
    }


def _descriptor(schema: Any) -> Descriptor | None:
    if hasattr(schema, "DESCRIPTOR"):
        return schema.DESCRIPTOR
    if isinstance(schema, str) and "." in schema:
        return descriptor_pool.Default().FindMessageTypeByName(schema)
    return None


def _ref(schema: Any, pending: list[Descriptor]) -> dict[str, Any]:
    d = _descriptor(schema)
    if d is not None:
        pending.append(d)
        return {"$ref": f"#/components/schemas/{d.full_name}"}
    return {"$ref": f"#/components/schemas/{schema}"}


# The IDs a path names: new ones are base62 (`inv_` + 22 letters and digits, ordered by
# creation time); those made by earlier versions may also hold `-` and `_`.
_ID_PARAMS = {
    "invocation_id": ("inv_", "an invocation ID"),
    "bulk_operation_id": ("bulk_", "a bulk operation ID"),
}


def _path_param(name: str) -> dict[str, Any]:
    param: dict[str, Any] = {"name": name, "in": "path", "required": True}
    if name not in _ID_PARAMS:
        return {**param, "schema": {"type": "string"}}
    prefix, what = _ID_PARAMS[name]
    return {
        **param,
        "schema": {"type": "string", "pattern": f"^{prefix}[0-9A-Za-z_-]{{22}}$"},
        "description": f"{what}: {prefix} and 22 letters and digits (IDs made by earlier "
        "versions may also contain - and _)",
    }


def _operation(route: Route, pending: list[Descriptor]) -> dict[str, Any]:
    params = [_path_param(name) for name in re.findall(r"{(\w+)}", route.path)]
    for p in route.query:
        schema: dict[str, Any] = {"type": p.type}
        if p.enum:
            schema["enum"] = list(p.enum)
        if p.repeated:
            schema = {"type": "array", "items": schema}
        params.append(
            {"name": p.name, "in": "query", "schema": schema, "description": p.description}
        )
    op: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "tags": [route.tag],
        "parameters": params,
        "responses": {},
    }
    if route.rpc is not None:
        op["x-invoctl-rpc"] = route.rpc.lstrip("/")
    if route.public:
        op["security"] = []
    if route.body is not None:
        op["requestBody"] = {
            "required": route.method == "POST",
            "content": {"application/json": {"schema": _ref(route.body, pending)}},
        }
    for status, schema in route.responses.items():
        entry: dict[str, Any] = {"description": "OK" if status < 300 else "see summary"}
        if schema == "EventStream":
            entry["content"] = {"text/event-stream": {"schema": _ref(schema, pending)}}
        elif schema is not None:
            entry["content"] = {"application/json": {"schema": _ref(schema, pending)}}
        op["responses"][str(status)] = entry
    op["responses"]["default"] = {
        "description": "an error (4xx for the request, 5xx for the server)",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    return op


def document(routes: Iterable[Route], *, version: str) -> dict[str, Any]:
    pending: list[Descriptor] = []
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, pending)
    schemas: dict[str, Any] = dict(_LOCAL)
    # The messages the operations name, and every message those name, once each.
    pending.append(descriptor_pool.Default().FindMessageTypeByName(
        "invoctl.v1.RestartInvocationAsNewResponse"))  # fmt: skip
    pending.append(descriptor_pool.Default().FindMessageTypeByName("invoctl.v1.BulkSelector"))
    while pending:
        d = pending.pop()
        if d.full_name not in schemas:
            schemas[d.full_name] = _message(d, pending)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "invoctl HTTP admin API",
            "version": version,
            "description": "Restate's admin routes for invocations (tag restate) and "
            "invoctl's own (tag invoctl). Bodies are the proto3 JSON mapping of the gRPC "
            "API's messages.",
        },
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
