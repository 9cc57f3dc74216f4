"""The `invoctl` command line against a real server, as the README shows it."""

from __future__ import annotations

import asyncio
import json
import sys

from invoctl.sdk import Worker
from tests.e2e._helpers import greeter


async def invoctl(server, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "invoctl.cli", "--server", server.address, *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    return proc.returncode, out.decode(), err.decode()


async def test_invoke_get_journal_ls_and_deployments(server):
    async with Worker([greeter()], server=server.address):
        code, out, err = await invoctl(server, "invoke", "Greeter/greet", '"Ada"')
        assert (code, err) == (0, "")
        assert "Hello, Ada!" in out

        code, out, _ = await invoctl(server, "--json", "invoke", "Greeter/greet", '"Bo"', "--send")
        assert code == 0
        inv_id = json.loads(out)["invocationId"]

        code, out, _ = await invoctl(server, "--json", "invocations", "get", inv_id)
        assert code == 0
        assert json.loads(out)["id"] == inv_id

        code, out, _ = await invoctl(server, "invocations", "journal", inv_id)
        assert code == 0
        assert "compose" in out and "accepted" in out

        code, out, _ = await invoctl(server, "--json", "invocations", "ls", "--service", "Greeter")
        assert code == 0
        assert len(json.loads(out)["invocations"]) == 2

        code, out, _ = await invoctl(server, "deployments", "ls")
        assert code == 0
        assert "Greeter" in out


async def test_errors_are_one_readable_line_and_exit_1(server):
    code, out, err = await invoctl(server, "invocations", "get", "inv_123")
    assert code == 1
    assert out == ""
    assert err.strip().startswith("error: INVALID_ARGUMENT (MALFORMED_ID)")
    assert "Traceback" not in err

    code, _, err = await invoctl(server, "invoke", "Nope/greet", "1")
    assert code == 1
    assert "NOT_FOUND (SERVICE_NOT_FOUND)" in err


async def test_operator_commands(server, client):
    from invoctl.v1 import invocation_pb2 as pb
    from tests.e2e._operator import Lab

    async with Lab(server.address, client) as lab:
        later = await lab.make(pb.INVOCATION_STATE_SCHEDULED)
        code, out, err = await invoctl(server, "invocations", "cancel", later, "--reason", "r")
        assert (code, err) == (0, "")
        assert f"cancelled {later}" in out and "cancelled" in out.split(later, 1)[1]

        code, out, err = await invoctl(server, "invocations", "cancel", later)
        assert (code, out) == (1, "")
        assert err.startswith("error: FAILED_PRECONDITION (INVALID_STATE_TRANSITION)")

        stuck = await lab.make(pb.INVOCATION_STATE_PAUSED)
        code, out, _ = await invoctl(
            server, "--json", "invocations", "resume", stuck, "--deployment", "latest"
        )
        assert code == 0
        assert json.loads(out)["id"] == stuck

        running = await lab.make(pb.INVOCATION_STATE_RUNNING)
        code, out, _ = await invoctl(server, "invocations", "kill", running)
        assert code == 0 and f"killed {running}" in out

        code, out, _ = await invoctl(server, "--json", "invocations", "restart-as-new", running)
        assert code == 0
        assert json.loads(out)["restartedFrom"] == running

        code, out, _ = await invoctl(server, "invocations", "purge", later)
        assert code == 0 and f"purged {later}" in out

        code, out, _ = await invoctl(server, "audit", "ls")
        assert code == 0
        for operation in ("CancelInvocation", "KillInvocation", "PurgeInvocation"):
            assert operation in out
