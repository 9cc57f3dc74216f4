"""The Prometheus endpoint (--metrics-listen): invocations per state, transitions by
event, bulk operations and their progress, the database pool; scraped over HTTP."""

from __future__ import annotations

import asyncio
import re
import urllib.error
import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from invoctl.client import Client, InvoctlError, selector
from invoctl.sdk import Context, Service, Worker
from invoctl.v1 import bulk_pb2
from invoctl.v1 import invocation_pb2 as pb
from invoctl_server.app import App
from invoctl_server.config import ConfigError
from tests.conftest import server_config
from tests.e2e._operator import Lab
from tests.support import ServerProcess, run_server_to_exit, wait_for

STATES = (
    "pending", "scheduled", "ready", "running", "backing-off", "suspended", "paused",
    "completed",
)  # fmt: skip

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _get(url: str, method: str = "GET") -> tuple[int, str, str]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            body = response.read().decode()
            return response.status, response.headers["Content-Type"], body
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read().decode()


async def scrape(address: str) -> Samples:
    """Every sample at http://address/metrics, by (name, labels)."""
    status, content_type, text = await asyncio.to_thread(_get, f"http://{address}/metrics")
    assert status == 200, text
    assert content_type.startswith("text/plain"), content_type
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def echo() -> Service:
    svc = Service("Echo")

    @svc.handler()
    async def say(ctx: Context, text: Any = None) -> Any:
        return text

    return svc


@pytest.fixture
async def app(database):
    """A server with its metrics endpoint on a free loopback port, refreshed on every
    scrape (the default reads the database at most every 5 s)."""
    app = await App.start(
        server_config(database, metrics_listen="127.0.0.1:0", metrics_refresh=0.0)
    )
    yield app
    await app.stop(grace=0)


async def test_invocations_transitions_bulk_operations_and_the_pool(app):
    address = app.metrics_address
    assert address is not None and address.startswith("127.0.0.1:")
    before = await scrape(address)
    assert [value(before, "invoctl_invocations", state=s) for s in STATES] == [0] * 8
    counted = {
        e: value(before, "invoctl_transitions_total", event=e) or 0
        for e in ("accepted", "claimed", "completed", "cancelled")
    }

    async with Client(app.address) as client, Worker([echo()], server=app.address):
        for n in range(5):
            assert await client.invoke("Echo", "say", n) == n
        later = [await client.send("Echo", "say", n, delay=3600) for n in range(3)]
        mid = await scrape(address)
        assert value(mid, "invoctl_invocations", state="completed") == 5
        assert value(mid, "invoctl_invocations", state="scheduled") == 3
        progress = [
            p async for p in client.bulk_operation("cancel", selector(invocation_ids=later))
        ]
        assert progress[-1].succeeded == 3

    after = await scrape(address)
    assert value(after, "invoctl_invocations", state="completed") == 8
    assert [value(after, "invoctl_invocations", state=s) for s in STATES[:-1]] == [0] * 7

    def grew(event: str) -> float:
        return (value(after, "invoctl_transitions_total", event=event) or 0) - counted[event]

    assert (grew("accepted"), grew("claimed"), grew("completed"), grew("cancelled")) == (
        8,
        5,
        5,
        3,
    )
    assert value(after, "invoctl_bulk_operations", kind="cancel", state="completed") == 1
    # No bulk operation runs: no progress series.
    assert not [k for k in after if k[0].startswith("invoctl_bulk_operation_")]

    # The pool: its limit, and its connections in use or idle, within it.
    assert value(after, "invoctl_db_pool_max_connections") == 10
    in_use = value(after, "invoctl_db_pool_connections", state="in_use")
    idle = value(after, "invoctl_db_pool_connections", state="idle")
    assert in_use is not None and idle is not None
    assert in_use >= 0 and 2 <= in_use + idle <= 10  # the pool keeps 2 open at least
    # And the process metrics of prometheus_client.
    assert value(after, "process_cpu_seconds_total") is not None


async def test_by_service_the_oldest_waiting_and_operator_latency(app):
    address = app.metrics_address
    latency = "invoctl_operator_rpc_seconds_count"
    before = await scrape(address)  # the histogram is the process's, like the server's
    async with Client(app.address) as client, Lab(app.address, client) as lab:
        ready = await lab.make(pb.INVOCATION_STATE_READY)  # LabIdle: nobody serves it
        await lab.make(pb.INVOCATION_STATE_BACKING_OFF)  # Lab/fail
        await lab.make(pb.INVOCATION_STATE_COMPLETED)  # Lab/echo
        await client.get_invocation(ready)
        with pytest.raises(InvoctlError):
            await client.kill_invocation("inv_-" + "0" * 21)  # refusals are timed too
        first = await scrape(address)
        second = await scrape(address)

    def of(samples: Samples, name: str, service: str, state: str) -> float | None:
        return value(samples, name, service=service, state=state)

    counts = "invoctl_service_invocations"
    assert of(first, counts, "LabIdle", "ready") == 1
    assert of(first, counts, "Lab", "backing-off") == 1
    assert of(first, counts, "Lab", "completed") == 1
    # States a service has none in have no series; both totals agree.
    assert of(first, counts, "LabIdle", "completed") is None
    assert value(first, "invoctl_invocations", state="ready") == 1

    oldest = "invoctl_oldest_waiting_seconds"
    # The waiting ones age from scrape to scrape; a state with none waiting is 0.
    assert 0 < of(first, oldest, "LabIdle", "ready") < of(second, oldest, "LabIdle", "ready")
    assert 0 < of(first, oldest, "Lab", "backing-off")
    assert of(first, oldest, "LabIdle", "backing-off") == 0
    assert of(first, oldest, "Lab", "ready") == 0

    def calls(method: str) -> float:
        return (value(first, latency, method=method) or 0) - (
            value(before, latency, method=method) or 0
        )

    assert calls("GetInvocation") >= 1
    assert calls("KillInvocation") == 1
    # Only InvocationControl's methods: ingress (the sends) is not an operator RPC.
    assert not [k for k in first if k[0] == latency and ("method", "Send") in k[1]]


async def test_a_running_bulk_operation_shows_its_progress(app):
    address = app.metrics_address
    async with Client(app.address) as client, Worker([echo()], server=app.address):
        ids = [await client.send("Echo", "say", n, delay=3600) for n in range(20)]
        stream = client.bulk_operation("cancel", selector(invocation_ids=ids), max_per_second=5)
        first = await anext(stream)
        bulk_id = first.bulk_operation_id

        async def progressed() -> Samples | None:
            samples = await scrape(address)
            done = value(
                samples,
                "invoctl_bulk_operation_processed",
                bulk_operation_id=bulk_id,
                kind="cancel",
                result="succeeded",
            )
            return samples if done and done >= 2 else None

        running = await wait_for(progressed, what="the bulk operation's progress")
        assert value(running, "invoctl_bulk_operations", kind="cancel", state="running") == 1
        labels = dict(bulk_operation_id=bulk_id, kind="cancel")
        assert value(running, "invoctl_bulk_operation_matched", **labels) == 20
        for result in ("skipped", "failed"):
            labels = dict(bulk_operation_id=bulk_id, kind="cancel", result=result)
            assert value(running, "invoctl_bulk_operation_processed", **labels) == 0

        stopped = await client.stop_bulk_operation(bulk_id)
        assert stopped.state == bulk_pb2.BULK_OPERATION_STATE_STOPPED
        await stream.aclose()

    after = await scrape(address)
    assert value(after, "invoctl_bulk_operations", kind="cancel", state="stopped") == 1
    assert value(after, "invoctl_bulk_operations", kind="cancel", state="running") is None
    assert not [k for k in after if k[0].startswith("invoctl_bulk_operation_")]
    cancelled = value(after, "invoctl_invocations", state="completed")
    assert cancelled == stopped.succeeded
    assert value(after, "invoctl_invocations", state="scheduled") == 20 - stopped.succeeded


async def test_the_database_is_read_at_most_once_per_refresh_interval(database):
    app = await App.start(
        server_config(database, metrics_listen="127.0.0.1:0", metrics_refresh=3600.0)
    )
    try:
        first = await scrape(app.metrics_address)
        async with Client(app.address) as client, Worker([echo()], server=app.address):
            await client.send("Echo", "say", "later", delay=3600)
        second = await scrape(app.metrics_address)
        # The count is the first scrape's (no new query); the pool is read live.
        assert value(first, "invoctl_invocations", state="scheduled") == 0
        assert value(second, "invoctl_invocations", state="scheduled") == 0
        assert value(second, "invoctl_transitions_total", event="accepted") == (
            (value(first, "invoctl_transitions_total", event="accepted") or 0) + 1
        )
    finally:
        await app.stop(grace=0)


async def test_only_get_or_head_of_metrics_is_served(app):
    url = f"http://{app.metrics_address}"
    status, _, body = await asyncio.to_thread(_get, f"{url}/")
    assert status == 404 and "/metrics" in body
    status, _, _ = await asyncio.to_thread(_get, f"{url}/metrics", "POST")
    assert status == 405
    status, _, body = await asyncio.to_thread(_get, f"{url}/metrics", "HEAD")
    assert status == 200 and body == ""
    # OpenMetrics for a scraper that asks for it.
    request = urllib.request.Request(
        f"{url}/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    with await asyncio.to_thread(urllib.request.urlopen, request, timeout=15) as response:
        assert response.headers["Content-Type"].startswith("application/openmetrics-text")
        assert response.read().decode().endswith("# EOF\n")
    # A client that connects and sends garbage, or nothing, does not stop the others.
    host, port = app.metrics_address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"nonsense\r\n\r\n")
    await writer.drain()
    assert await reader.read() == b""  # closed without an answer
    writer.close()
    assert value(await scrape(app.metrics_address), "invoctl_db_pool_max_connections") == 10


async def test_a_remote_metrics_address_is_refused_without_the_flag(database):
    remote = "192.0.2.1:9464"  # TEST-NET-1: not an address of this machine
    with pytest.raises(ConfigError) as refused:
        await App.start(server_config(database, metrics_listen=remote))
    assert remote in str(refused.value) and "--insecure-allow-remote" in str(refused.value)
    with pytest.raises(ConfigError, match="HOST:PORT"):
        await App.start(server_config(database, metrics_listen="9464"))
    done = await asyncio.to_thread(run_server_to_exit, database, "--metrics-listen", remote)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"refusing to serve metrics on {remote}" in done.stderr


async def test_the_server_process_serves_metrics_from_the_environment(database):
    server = ServerProcess(database, env={"INVOCTL_METRICS_LISTEN": "127.0.0.1:0"}).start()
    try:
        [address] = [
            m.group(1)
            for line in server.output
            if (m := re.search(r"metrics on http://(127\.0\.0\.1:\d+)/metrics", line))
        ]
        samples = await scrape(address)
        assert [value(samples, "invoctl_invocations", state=s) for s in STATES] == [0] * 8
        assert value(samples, "invoctl_db_pool_max_connections") == 20  # the default
    finally:
        server.stop()
