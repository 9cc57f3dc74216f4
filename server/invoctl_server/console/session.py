"""The console's session cookie and its protection against cross-site requests.

The cookie holds, signed with a key that every server on the database shares (HMAC-SHA256;
the first server to start draws it, migration 0008): a random nonce, the SHA-256 of the
token the user logged in with (empty when auth is off) and an expiry. A session so works
on any replica behind a load balancer and outlives restarts. The token itself is never
stored; each request looks its hash up among the configured tokens, so a token removed
from the configuration ends its sessions on every server started without it.

A state-changing request must come from our own pages: `Sec-Fetch-Site` (or, from a
browser that does not send it, `Origin`) must say same-origin, and it must carry the
CSRF token, an HMAC of the session's nonce, which only our pages know. SameSite=Strict
alone would not do: it trusts every subdomain's pages.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import secrets
import time

import asyncpg
from starlette.requests import Request

from ..api.auth import ANONYMOUS, Principal, Tokens
from ..domain.errors import PermissionDenied, Unauthenticated, clip
from ..store._sql import Q

COOKIE = "invoctl_console"
LIFETIME = 8 * 3600  # seconds: a working day, then log in again


@dataclasses.dataclass(frozen=True)
class Session:
    nonce: str
    token_sha256: str  # "" when auth is off
    expires: int


async def shared_key(conn: asyncpg.Connection) -> bytes:
    """The signing key every server on the database uses (the first one draws it)."""
    return await conn.fetchval(Q["console_key"], secrets.token_bytes(32))


class Sessions:
    def __init__(self, tokens: Tokens | None, *, secure: bool, key: bytes) -> None:
        self.tokens = tokens
        self.secure = secure  # TLS: the cookie is only sent over it
        # Shared by every server (shared_key): a session works on any of them.
        self._key = key

    def _sign(self, payload: bytes) -> str:
        return hmac.new(self._key, payload, hashlib.sha256).hexdigest()

    def new(self, token_sha256: str = "") -> tuple[Session, str]:
        """A session and its cookie value."""
        session = Session(secrets.token_hex(16), token_sha256, int(time.time()) + LIFETIME)
        payload = base64.urlsafe_b64encode(json.dumps(dataclasses.asdict(session)).encode())
        return session, f"{payload.decode()}.{self._sign(payload)}"

    def read(self, request: Request) -> Session | None:
        """The request's session; None if it has none, or a forged or expired one."""
        value = request.cookies.get(COOKIE, "")
        payload, _, signature = value.rpartition(".")
        if not payload or not hmac.compare_digest(self._sign(payload.encode()), signature):
            return None
        try:
            session = Session(**json.loads(base64.urlsafe_b64decode(payload)))
        except (ValueError, TypeError):
            return None
        return session if session.expires > time.time() else None

    def principal(self, session: Session | None) -> Principal:
        """Who the session is; Unauthenticated when auth is on and it is no one's."""
        if self.tokens is None:
            return ANONYMOUS
        who = self.tokens.principal_of_sha256(session.token_sha256) if session else None
        if who is None:
            raise Unauthenticated("log in with a token")
        return who

    def csrf_token(self, session: Session) -> str:
        return self._sign(b"csrf:" + session.nonce.encode())

    def check_same_origin(self, request: Request, session: Session | None, form: dict) -> None:
        """PermissionDenied unless a state-changing request comes from our own pages."""
        site = request.headers.get("sec-fetch-site")
        if site is not None:
            if site not in ("same-origin", "none"):
                raise PermissionDenied(f"cross-site request refused (Sec-Fetch-Site: {site})")
        else:
            origin = request.headers.get("origin")
            own = f"{request.url.scheme}://{request.url.netloc}"
            if origin is not None and origin != own:
                raise PermissionDenied(f"cross-site request refused (Origin: {clip(origin)})")
        sent = request.headers.get("x-csrf-token") or form.get("csrf") or ""
        if session is None or not hmac.compare_digest(sent, self.csrf_token(session)):
            raise PermissionDenied("the CSRF token is missing or wrong: reload the page")

    def set_cookie(self, response, value: str) -> None:
        response.set_cookie(
            COOKIE, value, max_age=LIFETIME, httponly=True, samesite="strict",
            secure=self.secure, path="/ui",
        )  # fmt: skip
