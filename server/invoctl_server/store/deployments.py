"""Deployments: registered worker versions and the handlers they serve."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime

import asyncpg

from ..domain.errors import DeploymentMismatch, HandlerNotFound, ServiceNotFound, echo
from ..domain.ids import new_deployment_id
from ..domain.retry import RetryPolicy
from ..domain.states import State
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
    identity: str | None = None
    last_seen_at: datetime | None = None


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


def definition(services: list[ServiceSpec]) -> dict:
    """What a deployment serves, in a canonical form: two registrations of one identity
    must have equal definitions."""
    return {
        "services": [
            {
                "name": svc.name,
                "kind": svc.kind,
                "retention_ms": svc.retention_ms,
                "handlers": [
                    {"name": h.name, "shared": h.shared, "retry_policy": h.retry_policy.to_json()}
                    for h in sorted(svc.handlers, key=lambda h: h.name)
                ],
            }
            for svc in sorted(services, key=lambda s: s.name)
        ]
    }


def _changes(prefix: str, old: list[dict], new: list[dict]) -> list[str]:
    """`<prefix><name> added / removed` between two lists of named definitions."""
    before, after = {d["name"] for d in old}, {d["name"] for d in new}
    return [f"{prefix}{n} added" for n in sorted(after - before)] + [
        f"{prefix}{n} removed" for n in sorted(before - after)
    ]


def _difference(old: dict, new: dict) -> str:
    """What changed between two definitions, in a few words for the error message."""
    parts = _changes("service ", old["services"], new["services"])
    after = {s["name"]: s for s in new["services"]}
    for b in old["services"]:
        a = after.get(b["name"])
        if a is None:
            continue
        prefix = f"handler {b['name']}/"
        parts += _changes(prefix, b["handlers"], a["handlers"])
        handlers = {h["name"]: h for h in a["handlers"]}
        parts += [
            f"{prefix}{h['name']} changed"
            for h in b["handlers"]
            if h["name"] in handlers and handlers[h["name"]] != h
        ]
        if (b["kind"], b["retention_ms"]) != (a["kind"], a["retention_ms"]):
            parts.append(f"service {b['name']} changed")
    return ", ".join(parts) or "definitions differ"


async def deployment_register(
    conn: asyncpg.Connection, services: list[ServiceSpec], now: datetime, identity: str | None
) -> tuple[Deployment, bool]:
    """Register a deployment with its services and handlers (policies already resolved);
    returns it and whether it is new.

    An identity registered before returns that deployment when the definitions are equal,
    and raises DeploymentMismatch when they are not. Without an identity every call
    registers a new deployment.
    """
    wanted = definition(services)
    dep = await conn.fetchrow(
        Q["deployment_insert"], new_deployment_id(), now, identity, json.dumps(wanted)
    )
    if dep is None:
        old = await conn.fetchrow(Q["deployment_by_identity"], identity)
        registered = json.loads(old["definition"])
        if registered != wanted:
            raise DeploymentMismatch(
                f"deployment {echo(identity)} is registered as {old['id']} with another "
                f"definition ({_difference(registered, wanted)}): a changed worker is a "
                "new version, so give it a new deployment name",
                deployment_id=old["id"],
                identity=identity,
            )
        [existing] = await _with_services(conn, [old])
        return existing, False
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
    return Deployment(dep["id"], dep["created_at"], tuple(services), identity), True


async def deployment_exists(conn: asyncpg.Connection, deployment_id: str) -> bool:
    return await conn.fetchrow(Q["deployment_get"], deployment_id) is not None


async def deployments_list(conn: asyncpg.Connection, service: str | None) -> list[Deployment]:
    """Deployments, newest first, optionally only those serving `service`."""
    return await _with_services(conn, await conn.fetch(Q["deployments_all"], service))


async def _with_services(conn: asyncpg.Connection, deps: list[asyncpg.Record]) -> list[Deployment]:
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
        Deployment(
            d["id"],
            d["created_at"],
            tuple(services.get(d["id"], {}).values()),
            d["identity"],
            d["last_seen_at"],
        )
        for d in deps
    ]


_NOT_COMPLETED = [str(s) for s in State if s != State.COMPLETED]


async def pinned_counts(conn: asyncpg.Connection, deployment_ids: list[str]) -> dict[str, int]:
    """Not-completed invocations pinned to each deployment (absent: none)."""
    rows = await conn.fetch(Q["deployments_pinned"], deployment_ids, _NOT_COMPLETED)
    return {r["deployment_id"]: r["n"] for r in rows}


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
        raise ServiceNotFound(f"no deployment serves service {echo(service)}", service=service)
    if row["handler"] is None:
        raise HandlerNotFound(
            f"service {echo(service)} has no handler {echo(handler)}",
            service=service,
            handler=handler,
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
