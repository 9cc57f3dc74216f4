"""Which invocations a bulk operation acts on (DESIGN.md section 5), and the query strings
operators know from Restate: `Greeter`, `Greeter/greet`, `CartObject/cart55`,
`CartObject/cart55/add`, `inv_...`.

Two parts are ambiguous: the handler of a plain service, or the key of a virtual object.
`parse_query` leaves them as `first`/`second` and `Selector.resolve` settles them once the
service's kind is known.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

from .errors import EmptySelector, InvalidSelector, clip, echo
from .ids import is_invocation_id


@dataclasses.dataclass(frozen=True)
class Query:
    """A parsed query string: an ID, or service with an optional handler and key."""

    invocation_id: str | None = None
    service: str | None = None
    second: str | None = None  # handler (service) or key (virtual object): see resolve
    handler: str | None = None
    key: str | None = None


def parse_query(text: str) -> Query:
    """`inv_...`, `Service`, `Service/second`, `Object/key/handler`. A key may contain `/`
    (the first part is the object, the last the handler)."""
    text = text.strip()
    if not text:
        return Query()
    if text.startswith("inv_"):
        if not is_invocation_id(text):
            raise InvalidSelector(f"{echo(text)} is not an invocation ID", query=text)
        return Query(invocation_id=text)
    parts = text.split("/")
    if any(not p for p in (parts[0], parts[-1])) or (len(parts) > 2 and not all(parts[1:-1])):
        raise InvalidSelector(
            f"{echo(text)} is not Service, Service/handler, Object/key or Object/key/handler",
            query=text,
        )
    if len(parts) == 1:
        return Query(service=parts[0])
    if len(parts) == 2:
        return Query(service=parts[0], second=parts[1])
    return Query(service=parts[0], key="/".join(parts[1:-1]), handler=parts[-1])


@dataclasses.dataclass(frozen=True)
class Selector:
    """Filters combined with AND; None matches anything."""

    service: str | None = None
    handler: str | None = None
    key: str | None = None
    states: tuple[str, ...] | None = None
    deployment_id: str | None = None
    created_before: datetime | None = None
    created_after: datetime | None = None
    invocation_ids: tuple[str, ...] | None = None

    def check_not_empty(self) -> Selector:
        if self == Selector():
            raise EmptySelector(
                "the selector matches every invocation: name a query, a service, states, "
                "a deployment, a time range or IDs"
            )
        return self

    def with_query(self, query: Query, *, is_object: bool | None) -> Selector:
        """This selector narrowed by a parsed query. `is_object` is the kind of the query's
        service (None if unknown), which settles a two-part query."""
        fields: dict[str, object] = {}
        if query.invocation_id:
            ids = self.invocation_ids
            if ids is not None and query.invocation_id not in ids:
                raise InvalidSelector(
                    "the query names an invocation the invocation_ids do not include"
                )
            fields["invocation_ids"] = (query.invocation_id,)
        handler, key = query.handler, query.key
        if query.second is not None:
            if is_object is None:
                raise InvalidSelector(
                    f"no deployment serves {echo(query.service)}: "
                    f"{clip(f'{query.service}/{query.second}')} "
                    "could be a handler or an object key",
                    service=query.service or "",
                )
            handler, key = (None, query.second) if is_object else (query.second, None)
        for name, value in (("service", query.service), ("handler", handler), ("key", key)):
            if value is None:
                continue
            given = getattr(self, name)
            if given is not None and given != value:
                raise InvalidSelector(
                    f"the query says {name} {echo(value)} but the selector says {echo(given)}"
                )
            fields[name] = value
        return dataclasses.replace(self, **fields)  # type: ignore[arg-type]
