"""TLS and mutual TLS: a real server with certificates made at test time (tests/_certs.py).

A client gets through only if it trusts the server's CA and, under mutual TLS, presents
a certificate that the configured client CA signed. Everything binds 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import pytest

from invoctl.client import Client, InvoctlError, tls_credentials
from invoctl.sdk import Worker
from invoctl_server.app import App
from invoctl_server.domain.ids import new_invocation_id
from tests._certs import Certs, make_certs
from tests.conftest import server_config
from tests.e2e._helpers import greeter

OK = grpc.StatusCode.NOT_FOUND  # GetInvocation of an unknown ID: the call got through
REFUSED = grpc.StatusCode.UNAVAILABLE  # no secure connection: the RPC never ran


@pytest.fixture
def certs(tmp_path) -> Certs:
    return make_certs(tmp_path / "certs")


@asynccontextmanager
async def serving(database: str, certs: Certs, *, mutual: bool = False) -> AsyncIterator[App]:
    app = await App.start(
        server_config(
            database,
            tls_cert=certs.server_cert,
            tls_key=certs.server_key,
            tls_client_ca=certs.ca if mutual else None,
        )
    )
    try:
        yield app
    finally:
        await app.stop(grace=0)


async def status_of(address: str, credentials: grpc.ChannelCredentials | None) -> grpc.StatusCode:
    """The status of GetInvocation of an unknown ID over these credentials."""
    async with Client(address, credentials=credentials, timeout=10) as c:
        with pytest.raises(InvoctlError) as refused:
            await c.get_invocation(new_invocation_id())
    if refused.value.code == OK:
        assert refused.value.reason == "INVOCATION_NOT_FOUND"
    return refused.value.code


async def test_tls_serves_only_clients_that_trust_its_ca(database, certs):
    async with serving(database, certs) as app:
        assert app.address.startswith("127.0.0.1:")
        assert await status_of(app.address, tls_credentials(certs.ca)) == OK
        assert await status_of(app.address, tls_credentials(certs.ca.read_bytes())) == OK
        assert await status_of(app.address, None) == REFUSED  # plaintext
        assert await status_of(app.address, tls_credentials(certs.other_ca)) == REFUSED


async def test_the_server_certificate_names_localhost_too(database, certs):
    async with serving(database, certs) as app:
        port = app.address.rsplit(":", 1)[1]
        assert await status_of(f"localhost:{port}", tls_credentials(certs.ca)) == OK


async def test_a_worker_over_tls_runs_an_invocation(database, certs):
    async with serving(database, certs) as app:
        credentials = tls_credentials(certs.ca)
        async with (
            Worker([greeter()], server=app.address, credentials=credentials),
            Client(app.address, credentials=credentials) as client,
        ):
            out = await asyncio.wait_for(client.invoke("Greeter", "greet", "Ada"), 30)
    assert out == "Hello, Ada!"


async def test_mutual_tls_needs_a_client_certificate_from_its_ca(database, certs):
    async with serving(database, certs, mutual=True) as app:
        mine = tls_credentials(certs.ca, certs.client_cert, certs.client_key)
        assert await status_of(app.address, mine) == OK
        assert await status_of(app.address, tls_credentials(certs.ca)) == REFUSED  # no cert
        stranger = tls_credentials(certs.ca, certs.other_client_cert, certs.other_client_key)
        assert await status_of(app.address, stranger) == REFUSED
        assert await status_of(app.address, None) == REFUSED  # plaintext


async def test_a_worker_over_mutual_tls_runs_an_invocation(database, certs):
    async with serving(database, certs, mutual=True) as app:
        credentials = tls_credentials(certs.ca, certs.client_cert, certs.client_key)
        async with (
            Worker([greeter()], server=app.address, credentials=credentials),
            Client(app.address, credentials=credentials) as client,
        ):
            out = await asyncio.wait_for(client.invoke("Greeter", "greet", "Bo"), 30)
            inv_id = await client.send("Greeter", "greet", "Cy")
            done = await asyncio.wait_for(client.attach(inv_id), 30)
    assert out == "Hello, Bo!"
    assert json.loads(done.output) == "Hello, Cy!"


def test_tls_credentials_want_a_key_with_the_certificate(certs):
    with pytest.raises(ValueError, match="go together"):
        tls_credentials(certs.ca, cert=certs.client_cert)
    with pytest.raises(ValueError, match="go together"):
        tls_credentials(certs.ca, key=certs.client_key)


# -- the command line -------------------------------------------------------------------


async def invoctl(address: str, *args: str, env: dict[str, str] | None = None):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("INVOCTL_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "invoctl.cli", "--server", address, *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**clean, **(env or {})},
    )  # fmt: skip
    out, err = await proc.communicate()
    return proc.returncode, out.decode(), err.decode()


def error_of(stderr: str) -> str:
    """The CLI's one error line. A failed handshake also makes gRPC's C core log a line
    of its own (`I... ssl_transport_security.cc ... Handshake failed`), which is not ours."""
    [line] = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert "Traceback" not in stderr
    return line


async def test_the_cli_over_tls(database, certs):
    async with serving(database, certs) as app:
        credentials = tls_credentials(certs.ca)
        async with (
            Worker([greeter()], server=app.address, credentials=credentials),
            Client(app.address, credentials=credentials) as client,
        ):
            inv_id = await client.send("Greeter", "greet", "Di")
            await asyncio.wait_for(client.attach(inv_id), 30)

        ca = str(certs.ca)
        code, out, err = await invoctl(app.address, "--tls-ca", ca, "invocations", "get", inv_id)
        assert (code, err) == (0, "")
        assert inv_id in out

        # After the command too, like --server and --json.
        code, out, err = await invoctl(
            app.address, "invocations", "get", inv_id, "--json", "--tls-ca", ca
        )
        assert (code, err) == (0, "")
        assert json.loads(out)["id"] == inv_id

        code, out, err = await invoctl(app.address, "invocations", "get", inv_id)  # plaintext
        assert code == 1 and out == ""
        assert error_of(err).startswith("error: UNAVAILABLE")
        # Not "is a server running?": one is, and it wants TLS.
        assert f"hint: {app.address} serves TLS: pass --tls-ca PEM" in err
        assert "is a server running" not in err

        other = str(certs.other_ca)
        code, out, err = await invoctl(app.address, "--tls-ca", other, "deployments", "ls")
        assert code == 1 and out == ""
        assert error_of(err).startswith("error: UNAVAILABLE")
        assert "serves TLS but the connection failed: does --tls-ca trust its certificate" in err


async def test_the_cli_over_mutual_tls_from_the_environment(database, certs):
    async with serving(database, certs, mutual=True) as app:
        tls = {"INVOCTL_TLS_CA": str(certs.ca), "INVOCTL_TLS_CERT": str(certs.client_cert)}
        code, _, err = await invoctl(
            app.address, "deployments", "ls", env={**tls, "INVOCTL_TLS_KEY": str(certs.client_key)}
        )
        assert (code, err) == (0, "no deployments registered\n")  # the RPC got through

        code, out, err = await invoctl(
            app.address,
            "--tls-ca", str(certs.ca),
            "--tls-cert", str(certs.other_client_cert),
            "--tls-key", str(certs.other_client_key),
            "deployments", "ls",
        )  # fmt: skip
        assert code == 1 and out == ""
        assert error_of(err).startswith("error: UNAVAILABLE")

        code, _, err = await invoctl(app.address, "deployments", "ls", env=tls)  # no key
        assert code == 2
        assert "--tls-cert and --tls-key go together" in err

        missing = str(certs.ca.parent / "missing.pem")
        code, _, err = await invoctl(app.address, "--tls-ca", missing, "deployments", "ls")
        assert code == 2
        assert "TLS:" in err and "Traceback" not in err
