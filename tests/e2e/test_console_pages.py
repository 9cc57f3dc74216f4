"""The console's other pages in a real browser: Deployments (services, handlers, connected
workers, pinned not-completed invocations and the link that moves them to latest), Bulk
operations, the Audit log's filters, and trace IDs as links from --trace-url-template."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.async_api import expect

from bench.bulk import SERVICE, register_deployment, seed
from invoctl.client import Client
from invoctl.sdk import Worker
from tests.conftest import server_config
from tests.e2e._browser import shot
from tests.e2e._helpers import greeter, wait_state
from tests.e2e._operator import S
from tests.e2e.test_auth import IDENTITY, TOKENS
from tests.e2e.test_console_security import _an_invocation, _login, secured  # noqa: F401


async def test_deployments_move_pinned_invocations_to_latest(server, database, lab, client, page):
    parked = await register_deployment(server.address)  # no worker: its invocations wait
    pinned = await seed(database, "wait", 3, "suspended", parked)
    ui = server.http_url + "/ui"
    answer = await page.goto(ui + "/invocations")
    assert answer and re.fullmatch(r"app;dur=\d+\.\d", answer.headers["server-timing"])
    await shot(page, "invocations")
    await page.click("nav a:has-text('Deployments')")
    section = page.locator(f"section.deployment[data-id='{parked}']")
    await expect(section).to_contain_text(f"{SERVICE} (wait)")
    await expect(section.locator(".workers")).to_have_text("0")
    await expect(section.locator(".pinned")).to_have_text("3")
    # The lab's deployment has its worker connected and no link (nothing pinned waits).
    ids = await page.locator("section.deployment").evaluate_all("els => els.map(e => e.dataset.id)")
    [lab_id] = [d for d in ids if "Lab (" in await _section_text(page, d)]
    lab_section = page.locator(f"section.deployment[data-id='{lab_id}']")
    await expect(lab_section.locator(".workers")).to_have_text("1")
    await expect(lab_section).to_contain_text("lab on ")  # the worker's name
    await expect(lab_section.locator("a.move")).to_have_count(0)
    await shot(page, "deployments")

    await section.locator("a.move").click()
    await expect(page.locator("#matched")).to_have_text("3")
    await expect(page.locator("#acts")).to_have_text("3")
    await expect(page.locator("select[name=deployment]")).to_have_value("latest")
    await page.fill("input[name=reason]", "off the old deployment")
    await page.click("button.confirm")
    await expect(page.locator("#job-state")).to_have_text("completed")
    await expect(page.locator("#succeeded")).to_have_text("3")
    for inv_id in pinned:  # resumed: ready again, for the newest deployment's workers
        await wait_state(client, inv_id, S.INVOCATION_STATE_READY)
    job_url = page.url

    await page.click("nav a:has-text('Bulk operations')")
    row = page.locator("table.list tbody tr")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("resume")
    await expect(row).to_contain_text("completed")
    await expect(row).to_contain_text("3 of 3")
    await expect(row).to_contain_text("3 / 0 / 0")
    await expect(row).to_contain_text("off the old deployment")
    await shot(page, "bulk-operations")
    await row.locator("a.id").click()
    await expect(page).to_have_url(job_url)
    await expect(page.locator("#percent")).to_have_text("100%")


async def _section_text(page, deployment: str) -> str:
    return await page.locator(f"section.deployment[data-id='{deployment}']").inner_text()


async def test_the_audit_log_filters_by_invocation_identity_action_and_time(secured, page):  # noqa: F811
    cancelled, killed = await _an_invocation(secured), await _an_invocation(secured)
    async with (
        Client(secured.address, token=TOKENS["operator"]) as operator,
        Client(secured.address, token=TOKENS["admin"]) as admin,
    ):
        await operator.cancel_invocation(cancelled, reason="by the operator")
        await admin.kill_invocation(killed, reason="by the admin")
        entries, _ = await admin.list_audit_entries()
    [kill_at] = [e.at.ToDatetime() for e in entries if e.invocation_id == killed]
    await _login(page, secured, "viewer")  # reading the audit log is a viewer's right
    audit = secured.http_url + "/ui/audit"
    rows = page.locator("table.audit tbody tr")

    async def shown(query: str) -> str:
        await page.goto(f"{audit}?{query}")
        return await page.locator("table.audit tbody").inner_text()

    everything = await shown("")
    assert "by the operator" in everything and "by the admin" in everything
    await shot(page, "audit-log")
    only = await shown(f"invocation_id={killed}")
    assert "by the admin" in only and "by the operator" not in only
    only = await shown(f"identity={IDENTITY['operator']}")
    assert "by the operator" in only and "by the admin" not in only
    only = await shown("operation=kill")  # any part of the RPC's name, any case
    assert "KillInvocation" in only and "CancelInvocation" not in only
    await expect(rows).to_have_count(1)
    before = (kill_at - timedelta(microseconds=1)).isoformat()
    only = await shown(f"before={before}")
    assert "by the operator" in only and "by the admin" not in only
    only = await shown(f"after={kill_at.isoformat()}")
    assert "by the admin" in only and "by the operator" not in only
    none = await shown(f"identity={IDENTITY['admin']}&operation=cancel")
    assert "no entries match" in none
    # The form puts the filter in the URL.
    await page.fill("input[name=identity]", IDENTITY["admin"])
    await page.fill("input[name=operation]", "")
    await page.click("form.filters button")
    await expect(page).to_have_url(re.compile(f"identity={IDENTITY['admin']}"))
    await expect(rows).to_have_count(1)
    await expect(rows).to_contain_text("by the admin")


TEMPLATE = "http://jaeger.example:16686/trace/{trace_id}?uiFind=x"


@pytest.fixture
async def traced(database):
    from invoctl_server.app import App

    app = await App.start(server_config(database, trace_url_template=TEMPLATE))
    yield app
    await app.stop(grace=0)


async def test_trace_ids_link_to_the_trace_url_template(traced, page):
    async with Client(traced.address) as c, Worker([greeter()], server=traced.address):
        inv = await c.send("Greeter", "greet", "ada")
        await c.attach(inv)
        journal = await c.get_journal(inv)
    traces = {t.trace_id for t in journal.transitions if t.trace_id}
    assert traces, "the transitions carry no trace IDs: nothing to link"
    await page.goto(f"{traced.http_url}/ui/invocations/{inv}")
    links = page.locator("table.history a.trace")
    await expect(links).to_have_count(len([t for t in journal.transitions if t.trace_id]))
    hrefs = set(await links.evaluate_all("els => els.map(e => e.getAttribute('href'))"))
    assert hrefs == {TEMPLATE.replace("{trace_id}", t) for t in traces}
    await expect(links.first).to_have_attribute("target", "_blank")
    await shot(page, "invocation-trace-links")
