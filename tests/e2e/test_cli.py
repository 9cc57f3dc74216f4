"""The `invoctl` command line against a real server, as the README shows it."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import re
import shlex
import signal
import socket
import struct
import sys
import termios

from invoctl.sdk import Context, RetryPolicy, Service, Worker
from invoctl.v1 import invocation_pb2 as pb
from tests._certs import make_certs
from tests.e2e._helpers import greeter, wait_state

# New IDs: base62, so a double-click selects all of one.
INV_ID = re.compile(rb"inv_[0-9A-Za-z]{22}")


async def invoctl(server, *args: str) -> tuple[int, str, str]:
    """Run the CLI against `server` (a server, or the address of one) to its end."""
    address = getattr(server, "address", server)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "invoctl.cli", "--server", address, *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    return proc.returncode, out.decode(), err.decode()


async def test_invoke_get_journal_ls_and_deployments(server):
    async with Worker([greeter()], server=server.address):
        code, out, err = await invoctl(server, "invoke", "Greeter/greet", '"Ada"')
        assert code == 0
        assert "Hello, Ada!" in out
        # The ID goes to stderr before the wait, never mixed into the output.
        assert re.fullmatch(r"inv_[0-9A-Za-z]{22}: waiting for its result; .*\n", err), err

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


async def test_unreachable_server_hints_say_what_listens_there(server, tmp_path):
    # A plaintext server called with TLS options.
    certs = make_certs(tmp_path / "certs")
    code, _, err = await invoctl(server, "--tls-ca", str(certs.ca), "deployments", "ls")
    assert code == 1 and "error: UNAVAILABLE" in err
    assert f"hint: {server.address} does not serve TLS: leave out --tls-ca" in err

    # Nothing at all on the port: a closed listener's port.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = f"127.0.0.1:{probe.getsockname()[1]}"
    code, _, err = await invoctl(free, "deployments", "ls")
    assert code == 1
    assert f"hint: nothing listens at {free}: start a server (invoctl serve)" in err


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


def failing() -> Service:
    """Flaky/always: fails every attempt, retrying every 0.2 s for ever."""
    svc = Service("Flaky", retry_policy=RetryPolicy(initial_interval=0.2, factor=1.0))

    @svc.handler()
    async def always(ctx: Context, _: object) -> None:
        raise RuntimeError(f"boom in attempt {ctx.attempt}")

    return svc


async def test_invoke_of_a_failing_handler_shows_its_id_and_state_and_how_to_find_it(
    server, client
):
    async with Worker([failing()], server=server.address):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "invoctl.cli", "--server", server.address,
            "invoke", "Flaky/always", "1",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            assert proc.stderr is not None
            first = await asyncio.wait_for(proc.stderr.readline(), 30)
            [inv_id] = INV_ID.findall(first)
            assert first.startswith(inv_id + b": waiting for its result"), first
            # Then a line per change: the attempt count and the last failure.
            state = await asyncio.wait_for(proc.stderr.readline(), 30)
            assert state.startswith(inv_id + b"  "), state
            assert re.search(rb"attempt [1-9]", state), state
            assert b"last failure: " in state and b"boom in attempt" in state, state
            proc.send_signal(signal.SIGINT)
            out, rest = await asyncio.wait_for(proc.communicate(), 30)
        finally:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        err = rest.decode()
        assert proc.returncode == 130, err
        assert out == b"" and "Traceback" not in err
        inv = inv_id.decode()
        assert f"interrupted: {inv} goes on (" in err
        for action in ("attach", "cancel", "kill"):
            command = f"invoctl --server {server.address} invocations {action} {inv}"
            assert command in err, err
        # It was left running, and the commands it printed work.
        assert (await client.get_invocation(inv)).state != pb.INVOCATION_STATE_COMPLETED
        code, out, err = await invoctl(server, "invocations", "kill", inv)
        assert code == 0, err
        code, out, err = await invoctl(server, "invocations", "attach", inv)
        assert (code, out) == (1, "")
        assert f"invocation {inv} killed" in err
        await wait_state(client, inv, pb.INVOCATION_STATE_COMPLETED)


async def _on_a_terminal(server, *args: str, columns: int) -> tuple[int, str]:
    """Run the CLI with stdout on a pseudo-terminal `columns` wide; its exit code and
    what it showed, without colours."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "invoctl.cli", "--server", server.address, *args,
            stdout=slave, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "COLUMNS": str(columns), "TERM": "xterm"},
        )  # fmt: skip
        os.close(slave)

        def read_all() -> bytes:
            chunks = []
            while True:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            return b"".join(chunks)

        shown = await asyncio.wait_for(asyncio.to_thread(read_all), 30)
        await asyncio.wait_for(proc.wait(), 30)
    finally:
        os.close(master)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown.decode())
    return proc.returncode, text.replace("\r\n", "\n")


async def test_ls_at_80_columns_never_wraps_an_id(server, client):
    async with Worker([greeter()], server=server.address):
        for _ in range(3):
            await client.send("Greeter", "greet", "Ada", delay=3600)
        code, out, _ = await invoctl(server, "--json", "invocations", "ls")
        ids = [i["id"] for i in json.loads(out)["invocations"]]
        assert len(ids) == 3
        for columns in (80, 60):
            code, out = await _on_a_terminal(server, "invocations", "ls", columns=columns)
            assert code == 0, out
            lines = out.splitlines()
            assert all(len(line.rstrip()) <= columns for line in lines), out
            for inv_id in ids:
                [line] = [line for line in lines if inv_id in line]  # whole, on one line
                assert line.startswith(inv_id) and "Greeter/greet" in line, out


async def test_ls_filters_as_the_bulk_selector_does_and_pages(lab, client):
    older = await lab.make(pb.INVOCATION_STATE_COMPLETED)
    keyed = await client.send("Lab", "echo", "x", idempotency_key="order-7")
    await wait_state(client, keyed, pb.INVOCATION_STATE_COMPLETED)
    killed = await lab.make(pb.INVOCATION_STATE_RUNNING)
    await client.kill_invocation(killed)
    newer = [await lab.make(pb.INVOCATION_STATE_SCHEDULED) for _ in range(3)]

    async def listed(*argv: str) -> list[str]:
        code, out, err = await invoctl(lab.server, "--json", "invocations", "ls", *argv)
        assert code == 0, err
        return [i["id"] for i in json.loads(out)["invocations"]]

    assert await listed("--outcome", "killed") == [killed]
    assert await listed("--idempotency-key", "order-7") == [keyed]
    created = (await client.get_invocation(keyed)).created_at.ToDatetime().isoformat()
    assert await listed("--created-before", created, "--service", "Lab") == [older]
    after = await listed("--created-after", created, "--service", "Lab")
    assert after == [*newer[::-1], killed, keyed]
    everything = await listed("--all", "--service", "Lab")
    assert everything == [*after, older]

    # Pages of 2: each says how to get the next, until none is left.
    seen: list[str] = []
    argv = ["invocations", "ls", "--service", "Lab", "--limit", "2"]
    while True:
        code, out, err = await invoctl(lab.server, *argv)
        assert code == 0, err
        seen += [line.split()[0] for line in out.splitlines()[1:]]
        match = re.search(r"Next page: (invoctl .*)", err)
        if match is None:
            assert seen == everything
            break
        assert match.group(1).startswith(f"invoctl --server {lab.server} invocations ls")
        argv = shlex.split(match.group(1))[3:]  # what follows `invoctl --server ADDRESS`
    code, _, err = await invoctl(lab.server, "invocations", "ls", "--outcome", "lost")
    assert code == 2 and "unknown outcome 'lost'" in err


async def test_several_ids_are_each_acted_on_and_reported(lab, client):
    first = await lab.make(pb.INVOCATION_STATE_RUNNING)
    done = await lab.make(pb.INVOCATION_STATE_COMPLETED)
    second = await lab.make(pb.INVOCATION_STATE_BACKING_OFF)
    code, out, err = await invoctl(
        lab.server, "invocations", "kill", first, done, second, "--request-id", "r1"
    )
    assert code == 1, err
    assert [line.split()[:2] for line in out.splitlines()] == [
        ["killed", first],
        ["killed", second],
    ]
    assert f"error: {done}: FAILED_PRECONDITION (INVALID_STATE_TRANSITION)" in err
    assert "1 of 3 failed" in err
    for inv_id in (first, second):
        inv = await client.get_invocation(inv_id)
        assert inv.outcome == pb.OUTCOME_KILLED

    # Repeated with the same request ID: each ID's first answer, nothing acts twice.
    code, out, _ = await invoctl(
        lab.server, "--json", "invocations", "kill", first, second, "--request-id", "r1"
    )
    assert code == 0
    results = json.loads(out)["results"]
    assert [r["invocationId"] for r in results] == [first, second]
    assert all(r["invocation"]["outcome"] == "OUTCOME_KILLED" for r in results)

    paused = [await lab.make(pb.INVOCATION_STATE_PAUSED) for _ in range(2)]
    code, out, err = await invoctl(lab.server, "invocations", "resume", *paused)
    assert (code, err) == (0, ""), err
    assert all(f"resumed {inv_id}" in out for inv_id in paused)

    code, _, err = await invoctl(lab.server, "invocations", "kill", first, "Lab/block")
    assert code == 2 and "'Lab/block' is not an invocation ID" in err
    code, _, err = await invoctl(lab.server, "invocations", "kill", first, second, "--dry-run")
    assert code == 2 and "with --id" in err
