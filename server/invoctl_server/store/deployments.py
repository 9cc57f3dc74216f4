"""Deployments: registered worker versions and the handlers they serve."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime

import asyncpg

from ..domain.errors import HandlerNotFound, ServiceNotFound
from ..domain.ids import new_deployment_id
from ..domain.retry import RetryPolicy
from ._sql import Q

DEFAULT_RETENTION_MS = 24 * 3600 * 1000


@dataclasses.dataclass(frozen=True)
class HandlerSpec:
    name: str
    shared: bool = False
    retry_policy: RetryPolicy = dataclasses.field(default_factory=RetryPolicy)


@dataclasses.dataclass(frozen=True)
class ServiceSpec:
    name: str
    kind: str  # 'service' | 'virtual_object'
    handlers: tuple[HandlerSpec, ...]
    retention_ms: int = DEFAULT_RETENTION_MS


@dataclasses.dataclass(frozen=True)
class Deployment:
    id: str
    created_at: datetime
    services: tuple[ServiceSpec, ...]


@dataclasses.dataclass(frozen=True)
class ResolvedHandler:
    """A handler as the deployment that will run it defines it."""

    deployment_id: str
    kind: str
    shared: bool
    retention_ms: int
    retry_policy: RetryPolicy

    @property
    def exclusive(self) -> bool:
        return self.kind == "virtual_object" and not self.shared


async def deployment_register(
    conn: asyncpg.Connection, services: list[ServiceSpec], now: datetime
) -> Deployment:
    """Insert a deployment with its services and handlers (policies already resolved)."""
    dep = await conn.fetchrow(Q["deployment_insert"], new_deployment_id(), now)
    for svc in services:
        await conn.execute(
            Q["deployment_service_insert"], dep["id"], svc.name, svc.kind, svc.retention_ms
        )
        await conn.executemany(
            Q["deployment_handler_insert"],
            [
                (dep["id"], svc.name, h.name, h.shared, json.dumps(h.retry_policy.to_json()))
                for h in svc.handlers
            ],
        )
    return Deployment(dep["id"], dep["created_at"], tuple(services))


async def deployment_exists(conn: asyncpg.Connection, deployment_id: str) -> bool:
    return await conn.fetchrow(Q["deployment_get"], deployment_id) is not None


async def deployments_list(conn: asyncpg.Connection, service: str | None) -> list[Deployment]:
    """Deployments, newest first, optionally only those serving `service`."""
    deps = await conn.fetch(Q["deployments_all"], service)
    rows = await conn.fetch(Q["deployment_services_of"], [d["id"] for d in deps])
    services: dict[str, dict[str, ServiceSpec]] = {}
    for r in rows:
        by_name = services.setdefault(r["deployment_id"], {})
        handler = HandlerSpec(
            r["handler"], r["shared"], RetryPolicy.from_json(json.loads(r["retry_policy"]))
        )
        old = by_name.get(r["service"])
        handlers = (*old.handlers, handler) if old else (handler,)
        by_name[r["service"]] = ServiceSpec(r["service"], r["kind"], handlers, r["retention_ms"])
    return [
        Deployment(d["id"], d["created_at"], tuple(services.get(d["id"], {}).values()))
        for d in deps
    ]


def _resolved(deployment_id: str, row: asyncpg.Record) -> ResolvedHandler:
    return ResolvedHandler(
        deployment_id=deployment_id,
        kind=row["kind"],
        shared=row["shared"],
        retention_ms=row["retention_ms"],
        retry_policy=RetryPolicy.from_json(json.loads(row["retry_policy"])),
    )


async def handler_latest(conn: asyncpg.Connection, service: str, handler: str) -> ResolvedHandler:
    """The handler as the newest deployment of `service` serves it.

    Raises ServiceNotFound when no deployment serves the service, HandlerNotFound when the
    newest one does not have the handler.
    """
    row = await conn.fetchrow(Q["handler_latest"], service, handler)
    if row is None:
        raise ServiceNotFound(f"no deployment serves service {service!r}", service=service)
    if row["handler"] is None:
        raise HandlerNotFound(
            f"service {service!r} has no handler {handler!r}", service=service, handler=handler
        )
    return _resolved(row["deployment_id"], row)


async def service_kind(conn: asyncpg.Connection, service: str) -> str | None:
    """`service` or `virtual_object`, as the newest deployment serving it says; None when
    no deployment serves it."""
    row = await conn.fetchrow(Q["handler_latest"], service, "")
    return None if row is None else row["kind"]


# A deployment never changes once registered and its ID is unique across databases, so
# what it says of a handler can be cached for the life of the process.
_HANDLERS: dict[tuple[str, str, str], ResolvedHandler | None] = {}
_HANDLERS_MAX = 10_000


async def handler_in(
    conn: asyncpg.Connection, deployment_id: str, service: str, handler: str
) -> ResolvedHandler | None:
    """The handler as `deployment_id` defines it, or None if it does not serve it."""
    key = (deployment_id, service, handler)
    if key in _HANDLERS:
        return _HANDLERS[key]
    row = await conn.fetchrow(Q["handler_in_deployment"], deployment_id, service, handler)
    resolved = None if row is None else _resolved(deployment_id, row)
    if len(_HANDLERS) >= _HANDLERS_MAX:
        _HANDLERS.clear()
    _HANDLERS[key] = resolved
    return resolved
