"""Bulk cancel from the console's list filter, in a real browser: the dry run's numbers,
the job started by the confirmation (once, however often the form is sent), its live
progress bar reaching 100 % with the server's counts, and a reload mid-job re-attaching;
and a job opened from another browser (a context with no cookies), stopped there.

The 2,000 suspended invocations are seeded with SQL, as bench/bulk.py does (running 2,000
handlers to a sleep would take most of the test on two cores); their deployment has no
worker, and the cancel goes through the server like any other."""

from __future__ import annotations

import re

from playwright.async_api import expect

from bench.bulk import SERVICE, register_deployment, seed
from invoctl.client import selector
from invoctl.v1 import bulk_pb2 as bpb
from tests.e2e._browser import shot

N = 2000
RATE = 400  # a second: the job runs ~5 s, so it is still running at the reload


async def test_bulk_cancel_of_2000_from_a_filter(server, database, client, page):
    deployment = await register_deployment(server.address)
    await seed(database, "wait", N, "suspended", deployment)
    await seed(database, "wait", 3, "completed", deployment)  # matched, but skipped
    ui = server.http_url + "/ui"
    # No filter, no bulk buttons: the server refuses a selector that matches everything.
    await page.goto(f"{ui}/invocations")
    await expect(page.locator(".bulk-hint")).to_be_visible()
    assert await page.locator(".bulk-actions").count() == 0
    await page.goto(f"{ui}/invocations?service={SERVICE}&handler=wait")
    await page.click("a.button:has-text('Cancel all matching')")

    # The dry run: what matches, by state, what the cancel would act on and skip.
    await expect(page.locator("#matched")).to_have_text(str(N + 3))
    await expect(page.locator("#acts")).to_have_text(str(N))
    await expect(page.locator("#skips")).to_have_text("3")
    rows = page.locator("tr.by-state")
    await expect(rows).to_have_count(2)
    await expect(page.locator("tr.by-state[data-state=suspended]")).to_contain_text("acts")
    await expect(page.locator("tr.by-state[data-state=completed]")).to_contain_text("skips")
    await expect(page.locator("#dry-run .id")).to_have_count(20)  # the sample
    await expect(page.locator("#dry-run button.copy").first).to_have_text("copy")
    confirm = page.locator("button.confirm")
    await expect(confirm).to_have_text(f"Confirm: cancel {N} invocations (skip 3)")
    await shot(page, "bulk-dry-run")
    assert await client.list_bulk_operations() == ([], None)  # a dry run starts nothing

    # Each rendering of the form has a request_id of its own: a later bulk action on the
    # same filter is a new job, not a re-attach to an old one.
    form = "form.confirm-bulk"
    request_id = page.locator(f"{form} input[name=request_id]")
    first_id = await request_id.get_attribute("value")
    await page.reload()
    assert await request_id.get_attribute("value") not in (first_id, "", None)
    # The same rendered form sent twice (a double click) starts one job, not two.
    await page.fill(f"{form} input[name=reason]", "bad deploy 7")
    await page.fill(f"{form} input[name=max_per_second]", str(RATE))
    twice = await page.evaluate(
        """async (sel) => {
            const f = document.querySelector(sel);
            const send = () => fetch(f.action, {method: "POST", body: new URLSearchParams(
                new FormData(f))}).then(r => r.url);
            return Promise.all([send(), send()]);
        }""",
        form,
    )
    await page.click(f"{form} button.confirm")
    await expect(page).to_have_url(re.compile(r".*/ui/bulk/bulk_[^/]+$"))
    assert twice == [page.url, page.url], (twice, page.url)
    jobs, _ = await client.list_bulk_operations()
    assert len(jobs) == 1 and jobs[0].reason == "bad deploy 7"

    # Live progress over SSE; a reload mid-job re-attaches to the running job.
    processed = page.locator("#processed")
    await expect(processed).not_to_have_text("0")
    await expect(page.locator("#job-state")).to_have_text("running")
    await expect(page.locator("#stop button")).to_be_visible()
    await shot(page, "bulk-running")
    await page.reload()
    await expect(page.locator("#progress[sse-connect]")).to_have_count(1)
    await expect(page.locator("#job-state")).to_have_text("running")
    before = int(await processed.inner_text())
    assert before < N, "the job ended before the reload: the test shows no re-attach"
    await expect(processed).not_to_have_text(str(before))  # the stream moves on
    await expect(page.locator("#percent")).to_have_text("100%", timeout=60_000)
    await expect(page.locator("#job-state")).to_have_text("completed")

    # The bar's numbers are the server's.
    [job] = [p async for p in client.watch_bulk_operation(jobs[0].bulk_operation_id)][-1:]
    assert job.final and job.state == bpb.BULK_OPERATION_STATE_COMPLETED
    assert (job.matched, job.processed, job.succeeded, job.skipped, job.failed) == (
        N + 3, N + 3, N, 3, 0,
    )  # fmt: skip
    for name, value in [("matched", N + 3), ("processed", N + 3), ("succeeded", N),
                        ("skipped", 3), ("failed", 0)]:  # fmt: skip
        await expect(page.locator(f"#{name}")).to_have_text(str(value))
    await expect(page.locator(".bar .fill")).to_have_attribute("style", re.compile("100.0%"))
    await expect(page.locator("#stop")).to_have_count(0)  # nothing left to stop
    await shot(page, "bulk-completed")


async def test_another_browser_attaches_to_a_running_job_and_stops_it(
    server, database, client, browser, page
):
    deployment = await register_deployment(server.address)
    await seed(database, "wait", 400, "suspended", deployment)
    progress = client.bulk_operation(
        "cancel", selector(service=SERVICE, handler="wait"), max_per_second=20
    )
    first = await anext(progress)
    await progress.aclose()  # the job runs on in the server, watched by nobody
    job_url = f"{server.http_url}/ui/bulk/{first.bulk_operation_id}"
    await page.goto(job_url)
    await expect(page.locator("#job-state")).to_have_text("running")

    other = await browser.new_context()  # another browser: no cookie, no shared state
    try:
        theirs = await other.new_page()
        await theirs.goto(job_url)
        await expect(theirs.locator("#job-state")).to_have_text("running")
        await expect(theirs.locator("#matched")).to_have_text("400")
        await theirs.click("#stop button")
        await expect(theirs.locator("#job-state")).to_have_text("stopped")
    finally:
        await other.close()
    # The first page's live stream shows the stop, and the stop button is gone.
    await expect(page.locator("#job-state")).to_have_text("stopped")
    await expect(page.locator("#stop")).to_have_count(0)
    processed = int(await page.locator("#processed").inner_text())
    assert 0 < processed < 400, processed
    await shot(page, "bulk-stopped")
