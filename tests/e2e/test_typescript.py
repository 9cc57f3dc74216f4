"""The TypeScript client (clients/typescript) against a real server: Python prepares the
invocations, the TypeScript tests (`node --test`) act on them through InvoctlClient, and
Python checks the result.

The TypeScript is compiled once per session (tsc) into a directory of its own. Node and
the packages of clients/typescript/package-lock.json must be installed (`make test` runs
`npm ci`); a missing Node fails these tests, it does not skip them.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from invoctl.sdk import Worker
from invoctl.v1 import invocation_pb2 as pb
from invoctl_server.app import App
from tests._certs import make_certs
from tests.conftest import server_config
from tests.e2e._helpers import greeter, wait_state
from tests.e2e._operator import Lab
from tests.e2e.test_auth import IDENTITY, TOKENS, tokens_config
from tests.support import ROOT

TS_DIR = ROOT / "clients" / "typescript"
S = pb


def _node() -> str:
    node = shutil.which("node")
    assert node, "node is not on PATH: the TypeScript client's tests need Node.js 20 or newer"
    return node


@pytest.fixture(scope="session")
def ts_build() -> Iterator[Path]:
    """clients/typescript (sources, generated stubs and tests) compiled by tsc into a
    directory of this session's own under dist/, so that test runs at the same time do
    not rewrite each other's JavaScript. Returns the compiled tests' directory."""
    node = _node()
    tsc = TS_DIR / "node_modules" / "typescript" / "bin" / "tsc"
    assert tsc.exists(), (
        "clients/typescript/node_modules is not installed: run `make ts-deps` (npm ci)"
    )
    (TS_DIR / "dist").mkdir(exist_ok=True)
    # Under clients/typescript, so that Node finds its package.json and node_modules.
    out = Path(tempfile.mkdtemp(prefix="pytest-", dir=TS_DIR / "dist"))
    try:
        built = subprocess.run(
            [node, str(tsc), "-p", "tsconfig.json", "--outDir", str(out), "--declaration", "false"],
            cwd=TS_DIR, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert built.returncode == 0, f"tsc failed:\n{built.stdout}{built.stderr}"
        yield out / "test"
    finally:
        shutil.rmtree(out, ignore_errors=True)


async def node_test(tests: Path, name: str, timeout: float = 90, **env: str) -> str:
    """Run compiled TypeScript tests (`node --test` on a file or a directory) with INVOCTL_*
    variables; fail with their output unless at least one ran and all passed."""
    variables = {k: v for k, v in os.environ.items() if not k.startswith("INVOCTL_")}
    variables.update(env)
    proc = await asyncio.create_subprocess_exec(
        _node(), "--enable-source-maps", "--test", "--test-reporter=spec", str(tests / name),
        cwd=TS_DIR, env=variables,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
        raise AssertionError(f"{name} still ran after {timeout}s:\n{out.decode()}") from None
    text = out.decode()
    assert proc.returncode == 0, f"{name} failed (exit {proc.returncode}):\n{text}"
    # The spec reporter's summary: every test ran and passed, none was skipped.
    summary = dict(re.findall(r"^\u2139 (\w+) (\d+)$", text, re.MULTILINE))
    ran, passed = int(summary.get("tests", 0)), int(summary.get("pass", -1))
    assert ran > 0 and passed == ran, f"{name}: {summary}\n{text}"
    assert summary.get("skipped") == "0" and summary.get("todo") == "0", f"{name}: {summary}"
    return text


def new_traceparent() -> tuple[str, str, str]:
    """A sampled W3C traceparent with a fresh trace ID: (header, trace_id, span_id)."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


@pytest.fixture
def dead_address() -> Iterator[str]:
    """A loopback port that is bound but not listening: a connection to it is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{s.getsockname()[1]}"


async def test_unit_tests(ts_build):
    await node_test(ts_build, "unit")


async def test_an_invocation_started_from_python_is_read_and_cancelled(
    ts_build, server, client, lab: Lab
):
    inv_id = await lab.make(S.INVOCATION_STATE_SUSPENDED)
    await node_test(
        ts_build, "e2e/get_and_cancel.test.js",
        INVOCTL_SERVER=server.address, INVOCTL_INVOCATION_ID=inv_id,
    )  # fmt: skip
    inv = await client.attach(inv_id)  # woken: the handler sees the cancel at its sleep
    assert (inv.state, inv.outcome) == (S.INVOCATION_STATE_COMPLETED, S.OUTCOME_CANCELLED)
    steps = (await client.get_journal(inv_id)).transitions
    [cancelled] = [t for t in steps if t.event == "cancelled"]
    assert cancelled.actor == "operator:anonymous"
    entries, _ = await client.list_audit_entries(inv_id)
    # The retried request ID acted once, and is recorded once.
    assert [(e.operation, e.reason, e.request_id) for e in entries] == [
        ("CancelInvocation", "cancelled from typescript", "ts-cancel-1")
    ]


async def test_an_invocation_without_a_worker_says_so_in_typescript(ts_build, server, client):
    async with Worker([greeter()], server=server.address) as worker:
        completed = await client.send("Greeter", "greet", "Ada")
        await client.attach(completed)
    waiting = await client.send("Greeter", "greet", "Bo")  # its only worker is gone
    await node_test(
        ts_build, "e2e/no_worker.test.js",
        INVOCTL_SERVER=server.address, INVOCTL_INVOCATION_ID=waiting,
        INVOCTL_DEPLOYMENT_ID=worker.deployment_id or "", INVOCTL_COMPLETED_ID=completed,
    )  # fmt: skip


async def test_a_bulk_cancel_is_followed_from_typescript(ts_build, server, client, lab: Lab):
    ids = list(await asyncio.gather(*(lab.client.send("Lab", "nap") for _ in range(30))))
    await asyncio.gather(*(wait_state(client, i, S.INVOCATION_STATE_SUSPENDED) for i in ids))
    done = await lab.make(S.INVOCATION_STATE_COMPLETED)  # Lab/echo: not matched
    await node_test(
        ts_build, "e2e/bulk_cancel.test.js",
        INVOCTL_SERVER=server.address, INVOCTL_INVOCATION_IDS=",".join(ids),
    )  # fmt: skip
    [bulk], _ = await client.list_bulk_operations()
    assert (bulk.matched, bulk.succeeded, bulk.final) == (30, 30, True)
    for inv_id in ids:
        inv = await client.attach(inv_id)
        assert inv.outcome == S.OUTCOME_CANCELLED, inv_id
    steps = (await client.get_journal(ids[0])).transitions
    [cancelled] = [t for t in steps if t.event == "cancelled"]
    assert cancelled.actor == f"bulk:{bulk.bulk_operation_id}"
    assert (await client.get_invocation(done)).outcome == S.OUTCOME_SUCCEEDED


async def test_errors_are_typed_with_code_and_reason(ts_build, server, lab: Lab, dead_address: str):
    completed = await lab.make(S.INVOCATION_STATE_COMPLETED)
    await node_test(
        ts_build, "e2e/errors.test.js",
        INVOCTL_SERVER=server.address, INVOCTL_COMPLETED_ID=completed,
        INVOCTL_DEAD_ADDRESS=dead_address,
    )  # fmt: skip


async def test_a_cancel_joins_the_trace_the_typescript_caller_gives(
    ts_build, server, client, lab: Lab, spans
):
    inv_id = await lab.make(S.INVOCATION_STATE_SUSPENDED)
    other = await lab.make(S.INVOCATION_STATE_SUSPENDED)
    traceparent, trace_id, parent_span_id = new_traceparent()
    other_traceparent, other_trace_id, _ = new_traceparent()
    spans.clear()
    await node_test(
        ts_build, "e2e/trace.test.js",
        INVOCTL_SERVER=server.address, INVOCTL_INVOCATION_ID=inv_id,
        INVOCTL_TRACEPARENT=traceparent, INVOCTL_OTHER_INVOCATION_ID=other,
        INVOCTL_OTHER_TRACEPARENT=other_traceparent,
    )  # fmt: skip
    for invocation, trace in ((inv_id, trace_id), (other, other_trace_id)):
        steps = (await client.get_journal(invocation)).transitions
        [cancelled] = [t for t in steps if t.event == "cancelled"]
        assert cancelled.trace_id == trace, (invocation, cancelled)
    # The server's span of the RPC is a child of the caller's span.
    rpcs = [
        s
        for s in spans.get_finished_spans()
        if s.name == "/invoctl.v1.InvocationControl/CancelInvocation"
        and format(s.context.trace_id, "032x") == trace_id
    ]
    assert [format(s.parent.span_id, "016x") for s in rpcs if s.parent] == [parent_span_id]


async def test_a_token_is_sent_as_a_bearer_token(ts_build, database):
    app = await App.start(server_config(database, auth_tokens=tokens_config()))
    try:
        await node_test(
            ts_build, "e2e/auth.test.js",
            INVOCTL_SERVER=app.address, INVOCTL_VIEWER_TOKEN=TOKENS["viewer"],
            INVOCTL_OPERATOR_TOKEN=TOKENS["operator"],
            INVOCTL_OPERATOR_IDENTITY=IDENTITY["operator"],
            INVOCTL_VIEWER_IDENTITY=IDENTITY["viewer"],
        )  # fmt: skip
    finally:
        await app.stop(grace=0)


async def test_mutual_tls(ts_build, database, tmp_path):
    certs = make_certs(tmp_path / "certs")
    app = await App.start(
        server_config(
            database,
            tls_cert=certs.server_cert,
            tls_key=certs.server_key,
            tls_client_ca=certs.ca,
        )
    )
    try:
        await node_test(
            ts_build, "e2e/tls.test.js",
            INVOCTL_SERVER=app.address, INVOCTL_TLS_CA=str(certs.ca),
            INVOCTL_TLS_CERT=str(certs.client_cert), INVOCTL_TLS_KEY=str(certs.client_key),
        )  # fmt: skip
    finally:
        await app.stop(grace=0)


def test_a_missing_server_variable_fails_the_typescript_test(ts_build):
    """The TypeScript tests refuse to run without what this module passes them, so that
    running them by hand cannot pass vacuously."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INVOCTL_")}
    ran = subprocess.run(
        [_node(), "--test", str(ts_build / "e2e" / "get_and_cancel.test.js")],
        cwd=TS_DIR, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert ran.returncode != 0
    assert "INVOCTL_SERVER is not set" in ran.stdout + ran.stderr
