"""An HTTP client for the HTTP API tests (aiohttp over 127.0.0.1), with the answer's
status, headers and JSON body together."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import aiohttp


@dataclasses.dataclass(frozen=True)
class Answer:
    status: int
    headers: Any  # multidict: case-insensitive
    text: str

    @property
    def json(self) -> Any:
        return json.loads(self.text)

    def error(self, status: int, reason: str) -> dict[str, Any]:
        """Assert an error answer of the HTTP API; returns its body."""
        assert self.status == status, (self.status, self.text)
        body = self.json
        assert body["reason"] == reason, body
        assert set(body) == {"message", "restate_code", "code", "reason", "metadata"}, body
        assert body["restate_code"] is None and body["message"], body
        assert "Traceback" not in self.text
        return body


class Http:
    """Requests to one server's HTTP API, optionally with a bearer token."""

    def __init__(self, base_url: str, *, token: str | None = None) -> None:
        self.base_url = base_url
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Http:
        self.session = aiohttp.ClientSession(
            self.base_url, headers=self.headers, timeout=aiohttp.ClientTimeout(total=30)
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.session is not None
        await self.session.close()

    async def request(self, method: str, path: str, **kwargs: Any) -> Answer:
        assert self.session is not None
        async with self.session.request(method, path, **kwargs) as r:
            return Answer(r.status, r.headers, await r.text())

    async def get(self, path: str, **kwargs: Any) -> Answer:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> Answer:
        return await self.request("POST", path, **kwargs)

    async def patch(self, path: str, **kwargs: Any) -> Answer:
        return await self.request("PATCH", path, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> Answer:
        return await self.request("DELETE", path, **kwargs)


@dataclasses.dataclass(frozen=True)
class Event:
    id: str
    event: str
    data: Any  # the JSON of `data:`
    at: float  # time.monotonic() when it arrived


async def read_events(response: aiohttp.ClientResponse, *, limit: int | None = None):
    """Server-sent events of a streaming response, as they arrive, until it ends (or
    `limit` events). Comments (pings) are skipped."""
    import time

    fields: dict[str, str] = {}
    count = 0
    async for raw in response.content:
        line = raw.decode().rstrip("\r\n")
        if line.startswith(":"):
            continue
        if line:
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
            continue
        if "data" in fields:
            yield Event(fields.get("id", ""), fields.get("event", ""),
                        json.loads(fields["data"]), time.monotonic())  # fmt: skip
            count += 1
            if limit is not None and count >= limit:
                return
        fields = {}
