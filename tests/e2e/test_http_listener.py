"""The HTTP listener: in the server process beside gRPC, refused on a port in use (exit
1), off with --http-listen off, TLS and mutual TLS with the gRPC API's flags, CORS only
for configured origins, and event streams that end when the server stops."""

from __future__ import annotations

import asyncio
import socket
import ssl

import aiohttp
import pytest

from invoctl.client import Client
from invoctl.v1 import invocation_pb2 as pb
from invoctl_server.app import App
from invoctl_server.config import ConfigError
from tests._certs import make_certs
from tests.conftest import server_config
from tests.e2e._http import Http, read_events
from tests.e2e._operator import Lab
from tests.support import ServerProcess, run_server_to_exit


async def test_a_port_in_use_is_refused_with_exit_1(database):
    taken = socket.create_server(("127.0.0.1", 0))
    port = taken.getsockname()[1]
    try:
        done = await asyncio.to_thread(
            run_server_to_exit, database, "--listen", "127.0.0.1:0",
            "--http-listen", f"127.0.0.1:{port}",
        )  # fmt: skip
    finally:
        taken.close()
    assert done.returncode == 1, done.stdout + done.stderr
    [line] = [line for line in done.stderr.splitlines() if line.startswith("invoctl serve: ")]
    assert line.startswith(f"invoctl serve: 127.0.0.1:{port} is already in use")
    assert "Traceback" not in done.stderr
    assert "invoctl serving on" not in done.stdout


async def test_a_second_server_on_the_same_http_port_is_refused(database, server, db):
    port = server.http_url.rsplit(":", 1)[1]
    with pytest.raises(ConfigError, match=f"127.0.0.1:{port} is already in use"):
        await App.start(server_config(database, http_listen=f"127.0.0.1:{port}"))
    async with Http(server.http_url) as h:  # the first one goes on serving
        assert (await h.get("/health")).status == 200


async def test_a_remote_http_address_without_auth_is_refused(database):
    done = await asyncio.to_thread(
        run_server_to_exit, database, "--listen", "127.0.0.1:0", "--http-listen", "192.0.2.1:0"
    )
    assert done.returncode == 1
    assert "refusing to serve HTTP on 192.0.2.1:0 without auth" in done.stderr


async def test_the_process_serves_http_beside_grpc_or_not_at_all(database):
    on = await asyncio.to_thread(ServerProcess(database).start)
    off = await asyncio.to_thread(ServerProcess(database, "--http-listen", "off").start)
    try:
        assert on.http_url.startswith("http://127.0.0.1:")
        async with Http(on.http_url) as h:
            assert (await h.get("/health")).json == {"status": "SERVING"}
        assert off.http_url == ""
        assert not any("HTTP API" in line for line in off.output)
    finally:
        on.stop()
        off.stop()


async def test_tls_and_mutual_tls_use_the_grpc_flags(database, tmp_path):
    certs = make_certs(tmp_path / "certs")
    config = server_config(
        database, tls_cert=certs.server_cert, tls_key=certs.server_key, tls_client_ca=certs.ca
    )
    app = await App.start(config)
    try:
        assert app.http_url is not None and app.http_url.startswith("https://127.0.0.1:")
        trusted = ssl.create_default_context(cafile=str(certs.ca))
        trusted.load_cert_chain(str(certs.client_cert), str(certs.client_key))
        async with aiohttp.ClientSession() as s, s.get(f"{app.http_url}/health", ssl=trusted) as r:
            assert r.status == 200
        stranger = ssl.create_default_context(cafile=str(certs.ca))
        stranger.load_cert_chain(str(certs.other_client_cert), str(certs.other_client_key))
        for context in (stranger, ssl.create_default_context(cafile=str(certs.ca))):
            with pytest.raises(aiohttp.ClientError):
                async with aiohttp.ClientSession() as s:
                    await s.get(f"{app.http_url}/health", ssl=context)
        plain = app.http_url.replace("https://", "http://")
        with pytest.raises(aiohttp.ClientError):
            async with aiohttp.ClientSession() as s:
                await s.get(f"{plain}/health")
    finally:
        await app.stop(grace=0)


async def test_cors_headers_only_for_a_configured_origin(database, http):
    origin = "https://console.example"
    headers = {"Origin": origin, "Access-Control-Request-Method": "PATCH"}
    plain = await http.get("/invocations", headers={"Origin": origin})
    assert "access-control-allow-origin" not in plain.headers
    assert (await http.request("OPTIONS", "/invocations/inv_x/kill", headers=headers)).status == 405

    app = await App.start(server_config(database, http_cors_origins=(origin,)))
    try:
        async with Http(app.http_url) as h:
            preflight = await h.request("OPTIONS", "/invocations/inv_x/kill", headers=headers)
            assert preflight.status == 200
            assert preflight.headers["access-control-allow-origin"] == origin
            assert "PATCH" in preflight.headers["access-control-allow-methods"]
            got = await h.get("/invocations", headers={"Origin": origin})
            assert got.headers["access-control-allow-origin"] == origin
            other = await h.get("/invocations", headers={"Origin": "https://evil.example"})
            assert "access-control-allow-origin" not in other.headers
    finally:
        await app.stop(grace=0)


async def test_stopping_the_server_ends_event_streams(database):
    app = await App.start(server_config(database))
    async with Client(app.address) as client, Lab(app.address, client) as lab:
        ids = [await lab.make(pb.INVOCATION_STATE_SUSPENDED) for _ in range(3)]
        async with Http(app.http_url) as h:
            job = {"operation": "cancel", "selector": {"invocationIds": ids}, "maxPerSecond": 0.5}
            bulk_id = (await h.post("/bulk-operations", json=job)).json["bulkOperationId"]
            assert h.session is not None
            async with h.session.get(f"/bulk-operations/{bulk_id}/events") as r:
                events = read_events(r)
                await anext(events)
                stopping = asyncio.create_task(app.stop(grace=5))
                rest = [e async for e in events]  # ends, though the job has not
                await asyncio.wait_for(stopping, 10)
    assert all(not e.data.get("final") for e in rest)


async def test_keep_alive_connections_have_nagle_off(server, http):
    """With Nagle's algorithm on, each response after the first on a keep-alive
    connection waits for the client's delayed ACK (~40 ms)."""
    assert (await http.get("/health")).status == 200
    connections = server._http._server.server_state.connections
    assert connections
    for protocol in connections:
        sock = protocol.transport.get_extra_info("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
