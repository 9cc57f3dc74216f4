"""Prometheus metrics, served over HTTP at /metrics when --metrics-listen is set.

Per server (add them up across servers):

    invoctl_transitions_total{event}              transitions made, counted at commit
    invoctl_operator_rpc_seconds{method}          latency of InvocationControl RPCs (a
                                                  histogram, refusals included)
    invoctl_db_pool_connections{state}            open pool connections, in_use or idle
    invoctl_db_pool_max_connections               the pool's limit (--pool-size)

Read from the database, so every server on it reports the same values (take max, not sum):

    invoctl_invocations{state}                    invocations in each state (all eight)
    invoctl_service_invocations{service, state}   the same, by service
    invoctl_oldest_waiting_seconds{service, state}  how long the longest-waiting ready and
                                                  backing-off invocation of each service
                                                  has been so (0 when none is)
    invoctl_bulk_operations{kind, state}          bulk operations, by kind and state
    invoctl_bulk_operation_matched{bulk_operation_id, kind}            running ones only:
    invoctl_bulk_operation_processed{bulk_operation_id, kind, result}  their progress

plus the process, platform and garbage-collector metrics of prometheus_client.

Costs. Counting a transition is one counter increment per apply() batch, after its
commit (transition.py). The database-wide values come from three GROUP BY queries; the
invocation count reads the whole table (or an index of it), which takes a while on tens of
millions of rows, so it runs on a scrape only if the last one is older than
--metrics-refresh-seconds: scrapers more frequent than that, or many of them, see the same
numbers and cost the database nothing more. A refresh that fails (the database is down)
drops the database-wide series until one succeeds rather than serving stale numbers.

The endpoint is plain HTTP on asyncio, in the server's event loop (no thread, so pool
figures are read where the pool lives). It has no auth: it carries counts, no payloads
or secrets, but it binds loopback only unless told otherwise (config.check_exposure).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import time
from collections.abc import Iterator

import asyncpg
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from .domain.states import State
from .listeners import bind_failure
from .store._sql import Q

log = logging.getLogger("invoctl.metrics")

# Process-wide, like the transitions it counts (one server per process in production).
TRANSITIONS = Counter(
    "invoctl_transitions",
    "Invocation state transitions committed, by event (purged: deletions of completed "
    "invocations, traced like transitions).",
    ["event"],
    registry=None,
)
_by_event: dict[str, Counter] = {}

# Process-wide too; observed by api/errors.rpc around each InvocationControl method.
OPERATOR_RPC_SECONDS = Histogram(
    "invoctl_operator_rpc_seconds",
    "Time to answer an InvocationControl RPC, refusals included, by method.",
    ["method"],
    registry=None,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
# States in which an invocation waits for something to run it; their age pages someone.
WAITING = (State.READY, State.BACKING_OFF)


class TransitionCount:
    """`n` transitions of one event, counted when `end()` is called: at once outside a
    transaction, or with the batch's spans once it commits (never if it rolls back)."""

    __slots__ = ("_child", "_n")

    def __init__(self, event: str, n: int) -> None:
        child = _by_event.get(event)
        if child is None:
            child = _by_event[event] = TRANSITIONS.labels(event=event)
        self._child = child
        self._n = n

    def end(self) -> None:
        self._child.inc(self._n)


# Longest a refresh may take before the scrape answers without the database's values.
REFRESH_TIMEOUT = 10.0
# Longest a client may take to send its request.
REQUEST_TIMEOUT = 10.0
_MAX_REQUEST_HEAD = 16 * 1024


@dataclasses.dataclass(frozen=True)
class _Snapshot:
    states: dict[str, int]
    by_service: list[asyncpg.Record]  # service, state, n, oldest_seconds
    bulk_states: list[tuple[str, str, int]]
    bulk_running: list[asyncpg.Record]


class Metrics:
    """The metrics of one server: `await start("127.0.0.1:9464")`, `await stop()`."""

    def __init__(self, pool: asyncpg.Pool, *, refresh_interval: float = 5.0) -> None:
        self._pool = pool
        self._interval = refresh_interval
        self._snapshot: _Snapshot | None = None
        self._refreshed_at = float("-inf")
        self._failing = False
        self._refresh_lock = asyncio.Lock()
        self._server: asyncio.Server | None = None
        self.port: int | None = None
        self.registry = CollectorRegistry(auto_describe=False)
        for collector in (
            TRANSITIONS, OPERATOR_RPC_SECONDS, PROCESS_COLLECTOR, PLATFORM_COLLECTOR,
            GC_COLLECTOR,
        ):  # fmt: skip
            self.registry.register(collector)
        self.registry.register(self)

    async def start(self, listen: str) -> int:
        """Serve /metrics on `listen` (host:port, port 0 picks one); returns the port."""
        host, _, port = listen.rpartition(":")
        try:
            self._server = await asyncio.start_server(
                self._serve, host.strip("[]"), int(port), limit=_MAX_REQUEST_HEAD
            )
        except OSError:
            raise bind_failure(listen) from None
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            self._server = None

    # -- collection --------------------------------------------------------------

    def describe(self) -> list[Metric]:
        return []  # names are not checked against the other collectors'

    def collect(self) -> Iterator[Metric]:
        pool = GaugeMetricFamily(
            "invoctl_db_pool_connections",
            "Open connections of this server's database pool, in use or idle.",
            labels=["state"],
        )
        idle = self._pool.get_idle_size()
        pool.add_metric(["in_use"], self._pool.get_size() - idle)
        pool.add_metric(["idle"], idle)
        yield pool
        yield GaugeMetricFamily(
            "invoctl_db_pool_max_connections",
            "Connections this server's database pool may open (--pool-size).",
            value=self._pool.get_max_size(),
        )
        snap = self._snapshot
        if snap is None:
            return
        states = GaugeMetricFamily(
            "invoctl_invocations",
            "Invocations in each state, in the whole database.",
            labels=["state"],
        )
        for state in State:
            states.add_metric([str(state)], snap.states.get(str(state), 0))
        yield states
        by_service = GaugeMetricFamily(
            "invoctl_service_invocations",
            "Invocations of each service in each state it has any in, in the whole database.",
            labels=["service", "state"],
        )
        oldest = GaugeMetricFamily(
            "invoctl_oldest_waiting_seconds",
            "Seconds since the longest-waiting ready or backing-off invocation of each "
            "service entered that state (0: none is).",
            labels=["service", "state"],
        )
        waited = {(r["service"], r["state"]): r["oldest_seconds"] for r in snap.by_service}
        for r in snap.by_service:
            by_service.add_metric([r["service"], r["state"]], r["n"])
        for service in sorted({r["service"] for r in snap.by_service}):
            for state in WAITING:
                oldest.add_metric([service, str(state)], max(0.0, waited.get((service, state), 0)))
        yield by_service
        yield oldest
        bulk = GaugeMetricFamily(
            "invoctl_bulk_operations",
            "Bulk operations by kind and state, in the whole database.",
            labels=["kind", "state"],
        )
        for kind, state, n in snap.bulk_states:
            bulk.add_metric([kind, state], n)
        yield bulk
        matched = GaugeMetricFamily(
            "invoctl_bulk_operation_matched",
            "Invocations a running bulk operation matched when it started.",
            labels=["bulk_operation_id", "kind"],
        )
        processed = GaugeMetricFamily(
            "invoctl_bulk_operation_processed",
            "Invocations a running bulk operation has processed so far, by result.",
            labels=["bulk_operation_id", "kind", "result"],
        )
        for row in snap.bulk_running:
            matched.add_metric([row["id"], row["kind"]], row["matched"])
            for result in ("succeeded", "skipped", "failed"):
                processed.add_metric([row["id"], row["kind"], result], row[result])
        yield matched
        yield processed

    async def refresh(self) -> None:
        """Read the database-wide values if the last read is older than the interval."""
        async with self._refresh_lock:  # concurrent scrapes share one refresh
            if time.monotonic() - self._refreshed_at < self._interval:
                return
            try:
                async with asyncio.timeout(REFRESH_TIMEOUT), self._pool.acquire() as conn:
                    by_service = await conn.fetch(Q["metrics_invocation_states"])
                    states = collections.Counter()
                    for r in by_service:
                        states[r["state"]] += r["n"]
                    bulk_states = await conn.fetch(Q["metrics_bulk_states"])
                    bulk_running = await conn.fetch(Q["metrics_bulk_running"])
            except Exception as exc:
                if not self._failing:
                    log.warning("metrics: cannot read the database (%s)", type(exc).__name__)
                self._failing = True
                self._snapshot = None
            else:
                if self._failing:
                    log.info("metrics: reading the database again")
                self._failing = False
                self._snapshot = _Snapshot(
                    states=dict(states),
                    by_service=list(by_service),
                    bulk_states=[(r["kind"], r["state"], r["n"]) for r in bulk_states],
                    bulk_running=list(bulk_running),
                )
            # A failure waits out the interval too: a scraper must not hammer a database
            # that is struggling.
            self._refreshed_at = time.monotonic()

    async def state_counts(self) -> dict[str, int] | None:
        """Invocations per state as of the last refresh (at most the interval old), for the
        web console's list page: a count of the whole table per interval, not per page
        load. None while the database cannot be read."""
        await self.refresh()
        snap = self._snapshot
        return None if snap is None else {str(s): snap.states.get(str(s), 0) for s in State}

    # -- HTTP ----------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One request per connection: GET (or HEAD) /metrics."""
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _version = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            if target.split("?", 1)[0] != "/metrics":
                status, content_type, body = "404 Not Found", "text/plain", b"try /metrics\n"
            elif method not in ("GET", "HEAD"):
                status, content_type, body = "405 Method Not Allowed", "text/plain", b""
            else:
                await self.refresh()
                encode, content_type = choose_encoder(headers.get("accept", ""))
                status, body = "200 OK", encode(self.registry)
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode("latin-1")
            )
            if method != "HEAD":
                writer.write(body)
            await writer.drain()
        except (
            TimeoutError,
            ConnectionError,
            ValueError,  # a malformed request line
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
        ):
            pass  # a client that went away, or spoke something else: nothing to answer
        except Exception:
            log.exception("metrics: scrape failed")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
