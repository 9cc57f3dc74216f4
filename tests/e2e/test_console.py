"""The web console in a real headless Chromium, against a real server (no auth): filter,
open, act with a reason, resume on latest, restart from a journal entry, and payloads
that hold markup shown as text."""

from __future__ import annotations

import re
from collections import Counter

from playwright.async_api import expect

from invoctl.sdk import Worker
from tests.e2e._browser import shot
from tests.e2e._helpers import wait_state
from tests.e2e._operator import S
from tests.e2e.test_operator_restart import chain


async def test_filter_open_cancel_with_a_reason(server, lab, client, page):
    naps = [await lab.make(S.INVOCATION_STATE_SUSPENDED) for _ in range(2)]
    done = await lab.make(S.INVOCATION_STATE_COMPLETED)
    ui = server.http_url + "/ui"
    await page.goto(ui + "/invocations")
    await expect(page.locator("table.list tbody tr")).to_have_count(3)
    await page.fill("input[name=handler]", "nap")
    await page.select_option("select[name=state]", "suspended")
    await page.click("#filters button")
    await expect(page).to_have_url(re.compile(r".*handler=nap.*state=suspended"))
    await expect(page.locator("table.list tbody tr")).to_have_count(2)
    assert done not in await page.locator("table.list").inner_text()
    await shot(page, "invocations-filtered")

    await page.click(f"a[href='/ui/invocations/{naps[0]}']")
    await expect(page.locator("#state")).to_have_text("suspended")
    # Suspended: cancel and kill apply (resume too), pause and purge do not.
    actions = await page.locator("details.action:not(.restart-from)").evaluate_all(
        "els => els.map(e => e.dataset.action)"
    )
    assert set(actions) == {"cancel", "kill", "resume"}, actions
    await page.click("details[data-action=cancel] summary")
    await page.fill("details[data-action=cancel] input[name=reason]", "bad deploy 42")
    url = page.url
    await page.click("details[data-action=cancel] button.confirm")
    # The new state shows without a reload; the audit entry has the reason.
    await expect(page.locator("#state")).not_to_have_text("suspended")
    await expect(page.locator("table.audit")).to_contain_text("bad deploy 42")
    await expect(page.locator("table.audit")).to_contain_text("anonymous")
    assert page.url == url
    await wait_state(client, naps[0], S.INVOCATION_STATE_COMPLETED)
    await page.reload()
    await expect(page.locator("#state")).to_have_text("completed")
    await expect(page.locator("#detail")).to_contain_text("cancelled")
    await shot(page, "invocation-cancelled")
    await page.goto(ui + f"/audit?invocation_id={naps[0]}")
    await expect(page.locator("table.audit tbody")).to_contain_text("bad deploy 42")
    await shot(page, "audit")


async def test_resume_a_paused_invocation_on_latest(server, lab, client, page):
    # Paused while backing off for an hour: once resumed, its attempt fails and it backs
    # off again, never paused, whenever the page reads it. (One paused because its
    # retries ran out could fail and pause again before the page reads it back.)
    paused = await lab.make(S.INVOCATION_STATE_BACKING_OFF)
    await client.pause_invocation(paused)
    await page.goto(f"{server.http_url}/ui/invocations/{paused}")
    await expect(page.locator("#state")).to_have_text("paused")
    await page.click("details[data-action=resume] summary")
    await page.select_option("details[data-action=resume] select[name=deployment]", "latest")
    await page.click("details[data-action=resume] button.confirm")
    await expect(page.locator("#state")).not_to_have_text("paused")
    await expect(page.locator("table.history")).to_contain_text("resumed")
    await shot(page, "invocation-resumed")
    journal = await client.get_journal(paused)
    assert "resumed" in [t.event for t in journal.transitions]


async def test_a_ready_invocation_that_never_started_offers_no_resume(server, lab, client, page):
    ready = await lab.make(S.INVOCATION_STATE_READY)
    assert (await client.get_invocation(ready)).attempt_count == 0  # it never started
    await page.goto(f"{server.http_url}/ui/invocations/{ready}")
    await expect(page.locator("#state")).to_have_text("ready")
    await expect(page.locator("details[data-action=cancel]")).to_have_count(1)
    # The server would refuse it: it goes to the newest deployment by itself.
    await expect(page.locator("details[data-action=resume]")).to_have_count(0)


async def test_restart_from_a_chosen_journal_entry(server, client, page):
    executed: Counter[str] = Counter()
    async with Worker([chain(executed, {})], server=server.address):
        old = await client.send("Chain", "work", "x")
        await client.attach(old)
        await page.goto(f"{server.http_url}/ui/invocations/{old}")
        entry = page.locator("li.entry[data-index='2']")
        await entry.locator("summary").click()
        await entry.locator("input[name=reason]").fill("rerun c")
        await entry.locator("button.confirm").click()
        await expect(page).not_to_have_url(re.compile(f".*{old}$"))
        new = page.url.rsplit("/", 1)[-1]
        await client.attach(new)
        await page.reload()
        await expect(page.locator("#state")).to_have_text("completed")
        await expect(page.locator("#detail")).to_contain_text(old)  # restarted_from
        values = await page.locator("li.entry").all_inner_texts()
    # a and b were replayed from the old journal; c ran again.
    assert '"x.a#1"' in values[0] and '"x.b#1"' in values[1] and '"x.c#2"' in values[2], values
    assert executed == {"a": 1, "b": 1, "c": 2}
    await shot(page, "invocation-restarted-from-entry")


async def test_a_payload_holding_a_script_shows_as_text(server, lab, client, page):
    evil = "<script>alert(1)</script>"
    inv = await client.send("Lab", "echo", evil)
    await wait_state(client, inv, S.INVOCATION_STATE_COMPLETED)
    dialogs: list[str] = []
    page.on("dialog", lambda d: dialogs.append(d.message))
    await page.goto(f"{server.http_url}/ui/invocations/{inv}")
    await expect(page.locator("#detail")).to_contain_text(evil)
    assert await page.locator("#detail script").count() == 0
    assert dialogs == []
    await shot(page, "invocation-script-payload")


async def test_a_refused_action_shows_the_servers_reason(server, lab, client, page):
    inv = await lab.make(S.INVOCATION_STATE_SUSPENDED)
    await page.goto(f"{server.http_url}/ui/invocations/{inv}")
    await expect(page.locator("#state")).to_have_text("suspended")
    await client.kill_invocation(inv, reason="from another tab")  # the page is now stale
    await wait_state(client, inv, S.INVOCATION_STATE_COMPLETED)
    await page.click("details[data-action=cancel] summary")
    await page.click("details[data-action=cancel] button.confirm")
    await expect(page.locator("#detail .error")).to_contain_text("INVALID_STATE_TRANSITION")
    # ... beside the invocation as it is now, with the buttons of its current state.
    await expect(page.locator("#state")).to_have_text("completed")
    await expect(page.locator("details[data-action=cancel]")).to_have_count(0)
    await expect(page.locator("table.audit")).to_contain_text("from another tab")
    await shot(page, "invocation-refused-action")
