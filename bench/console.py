"""The web console's invocation list on a big database: the server time of /ui/invocations
(its Server-Timing header: the page's queries and rendering, without HTTP) and the
round trip on loopback, over 200,000 invocations seeded with SQL as bench/bulk.py does.

Measured: the first page unfiltered, a second page (keyset token), a quick filter on the
not-completed states, and a service/handler/state filter. The issue's target is 300 ms.
Also the bulk dry-run page over all of them (no target: it counts every match, by state)."""

from __future__ import annotations

import re
import statistics
import time

import aiohttp

from .bulk import SERVICE, register_deployment, seed

TARGET_MS = 300
DRY_RUN = "bulk cancel dry run of every invocation"
_NEXT = re.compile(r'href="/ui/invocations\?([^"]*page_token=[^"]*)" rel="next"')


async def _get(session: aiohttp.ClientSession, path: str) -> tuple[float, float, str]:
    """Server ms (Server-Timing), round-trip ms, and the page."""
    started = time.perf_counter()
    async with session.get(path) as r:
        body = await r.text()
        assert r.status == 200, (path, r.status, body[:500])
        timing = r.headers["Server-Timing"]
    total = (time.perf_counter() - started) * 1000
    server = float(timing.split("dur=")[1])
    return server, total, body


async def console_list(address: str, http_url: str, dsn: str, total: int, repeat: int) -> list:
    """Rows of (name, p50 server ms, max server ms, p50 round trip ms)."""
    deployment = await register_deployment(address)
    suspended = total // 4  # a quarter not completed, as on a busy day's database
    for handler, n, state in (("wait", suspended, "suspended"), ("done", total - suspended,
                                                                   "completed")):  # fmt: skip
        for start in range(0, n, 50_000):  # one statement per 50,000: bounded memory
            await seed(dsn, handler, min(50_000, n - start), state, deployment)
    rows = []
    jar = aiohttp.CookieJar(unsafe=True)  # keep the console's cookie for 127.0.0.1
    async with aiohttp.ClientSession(http_url, cookie_jar=jar) as session:
        _, _, first = await _get(session, "/ui/invocations")  # the session cookie; warm
        next_query = _NEXT.search(first)
        assert next_query, "the first page has no next link"
        second = "/ui/invocations?" + next_query.group(1).replace("&amp;", "&")
        pages = {
            "invocation list, first page": "/ui/invocations",
            "invocation list, second page": second,
            "invocation list, quick filter not-completed": "/ui/invocations?quick=not-completed",
            "invocation list, service, handler and state filter": (
                f"/ui/invocations?service={SERVICE}&handler=wait&state=suspended"
            ),
            # Not the list: the bulk dry run of every match, counted once and by state.
            DRY_RUN: f"/ui/bulk/new?service={SERVICE}&operation=cancel",
        }
        for name, path in pages.items():
            timings = [await _get(session, path) for _ in range(repeat)]
            server = [t[0] for t in timings]
            rows.append((name, statistics.median(server), max(server),
                         statistics.median(t[1] for t in timings)))  # fmt: skip
    return rows


def console_rows(rows: list, total: int) -> list[tuple[str, str, str]]:
    return [
        (
            f"console, {total:,} invocations: {name}",
            f"server p50 {p50:.1f} ms (max {worst:.1f}), round trip p50 {trip:.1f} ms",
            "" if name == DRY_RUN else f"< {TARGET_MS} ms server time",
        )
        for name, p50, worst, trip in rows
    ]
