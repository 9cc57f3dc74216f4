"""The README's first example (greeter.py) as a user runs it: a worker process started
from the README's own text, a call to Greeter/greet, and the one-way send it makes to
Audit, which that example defines too, so the journal shows no SERVICE_NOT_FOUND."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys

from invoctl.v1 import invocation_pb2 as pb
from tests.e2e._helpers import wait_state
from tests.e2e.test_cli import invoctl
from tests.support import ROOT, wait_for


def greeter_example() -> str:
    """The README's `# greeter.py` block, as printed."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    [example] = [b for b in blocks if b.startswith("# greeter.py\n")]
    return example


async def test_the_readme_greeter_example_runs_and_its_send_arrives(server, client):
    code = greeter_example().replace('"127.0.0.1:9090"', repr(server.address))
    assert repr(server.address) in code  # the example still names the default server
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:

        async def registered() -> bool:
            services = {s.name for d in await client.list_deployments() for s in d.services}
            return {"Greeter", "Audit", "CartObject"} <= services

        await wait_for(registered, timeout=30, what="the README worker to register")
        code_, out, err = await invoctl(server, "invoke", "Greeter/greet", '"Ada"')
        assert code_ == 0, err
        assert out.strip() == '"Hello, Ada!"'

        [inv] = (await client.list_invocations(service="Greeter"))[0]
        journal = await client.get_journal(inv.id)
        [send] = [e for e in journal.entries if e.kind == pb.JOURNAL_ENTRY_KIND_SEND]
        assert send.target.service == "Audit" and not send.failure.code, send
        recorded = await wait_state(
            client, send.callee_invocation_id, pb.INVOCATION_STATE_COMPLETED
        )
        assert recorded.outcome == pb.OUTCOME_SUCCEEDED, recorded

        code_, out, _ = await invoctl(server, "invocations", "journal", inv.id)
        assert code_ == 0 and "SERVICE_NOT_FOUND" not in out
    finally:
        with contextlib.suppress(ProcessLookupError):
            worker.kill()
        await worker.wait()
