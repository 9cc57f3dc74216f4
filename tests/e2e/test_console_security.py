"""The console with tokens on: a login form sets a signed HttpOnly SameSite=Strict cookie;
a viewer sees no action buttons and its forged POST is refused by the server; a
cross-site POST without the CSRF token is refused; the operator's identity is audited."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from invoctl.sdk import Context, Service, Worker
from tests.conftest import server_config
from tests.e2e._browser import shot
from tests.e2e._http import Http
from tests.e2e.test_auth import IDENTITY, TOKENS, tokens_config


@pytest.fixture
async def secured(database):
    from invoctl_server.app import App

    app = await App.start(server_config(database, auth_tokens=tokens_config()))
    yield app
    await app.stop(grace=0)


async def _an_invocation(app) -> str:
    """A ready invocation of a deployment with no worker connected (it stays ready)."""
    svc = Service("Parked")

    @svc.handler()
    async def x(ctx: Context) -> None:
        return None

    parked = Worker([svc], server=app.address, token=TOKENS["worker"])
    await parked.register()
    await parked.stop()
    async with Http(app.http_url, token=TOKENS["operator"]) as h:
        sent = await h.post(
            "/invocations",
            json={"target": {"service": "Parked", "handler": "x"}, "mode": "INVOKE_MODE_SEND"},
        )
    assert sent.status == 202, sent.text
    return sent.json["invocationId"]


async def _login(page, app, role: str) -> None:
    await page.goto(app.http_url + "/ui/invocations")
    await expect(page).to_have_url(app.http_url + "/ui/login")
    await shot(page, "login")
    await page.fill("input[name=token]", TOKENS[role])
    await page.click("form.login button")
    await expect(page).to_have_url(app.http_url + "/ui/invocations")


async def test_a_viewer_sees_no_buttons_and_its_forged_post_is_refused(secured, page):
    inv = await _an_invocation(secured)
    await _login(page, secured, "viewer")
    [cookie] = await page.context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and not cookie["secure"]
    assert TOKENS["viewer"] not in cookie["value"]
    await expect(page.locator("nav .who")).to_contain_text(IDENTITY["viewer"])
    # On a filtered list (where an operator has them: the test below), no bulk buttons.
    await page.goto(f"{secured.http_url}/ui/invocations?service=Parked")
    await expect(page.locator("table.list tbody tr")).to_have_count(1)
    assert await page.locator(".bulk-actions, .bulk-hint").count() == 0
    await page.goto(f"{secured.http_url}/ui/invocations/{inv}")
    await expect(page.locator("#state")).to_have_text("ready")
    assert await page.locator("details.action").count() == 0
    await shot(page, "invocation-as-viewer")
    csrf = await page.evaluate(
        "JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRF-Token']"
    )
    forged = await page.request.post(
        f"{secured.http_url}/ui/invocations/{inv}/cancel",
        form={"reason": "forged"}, headers={"X-CSRF-Token": csrf, "Origin": secured.http_url},
    )  # fmt: skip
    assert forged.status == 403, await forged.text()
    assert "may not call" in await forged.text()
    # Refused for its role, and in the audit log all the same, as over the HTTP API.
    async with Http(secured.http_url, token=TOKENS["admin"]) as admin:
        entries = (await admin.get(f"/audit?invocation_id={inv}")).json["entries"]
    assert [(e["identity"], e["operation"], e["reason"], e["result"]) for e in entries] == [
        (IDENTITY["viewer"], "CancelInvocation", "forged", "PERMISSION_DENIED"),
    ]


async def test_a_cross_site_post_without_the_csrf_token_is_refused(secured, page):
    inv = await _an_invocation(secured)
    await _login(page, secured, "operator")
    await page.goto(f"{secured.http_url}/ui/invocations?service=Parked")
    await expect(page.locator(".bulk-actions a.button")).to_have_count(4)  # no kill, purge
    cross = await page.request.post(
        f"{secured.http_url}/ui/invocations/{inv}/cancel",
        form={"reason": "cross"}, headers={"Origin": "http://evil.example"},
    )  # fmt: skip
    assert cross.status == 403
    no_token = await page.request.post(
        f"{secured.http_url}/ui/invocations/{inv}/cancel",
        form={"reason": "no token"}, headers={"Origin": secured.http_url},
    )  # fmt: skip
    assert no_token.status == 403 and "CSRF" in await no_token.text()
    # The page's own form works, and the audit log names the operator.
    await page.goto(f"{secured.http_url}/ui/invocations/{inv}")
    await page.click("details[data-action=cancel] summary")
    await page.fill("details[data-action=cancel] input[name=reason]", "from the console")
    await page.click("details[data-action=cancel] button.confirm")
    await expect(page.locator("#state")).to_have_text("completed")
    await expect(page.locator("table.audit")).to_contain_text(IDENTITY["operator"])
    await expect(page.locator("table.audit")).not_to_contain_text("no token")


async def test_a_session_works_on_every_server_and_outlives_a_restart(secured, database, page):
    """Replicas behind a load balancer share one signing key (in the database): a cookie
    from one server is a session on another, and on a server started after it."""
    from invoctl_server.app import App

    await _login(page, secured, "operator")
    config = server_config(database, auth_tokens=tokens_config())
    other = await App.start(config)
    try:
        # Cookies are per host, not per port: the browser sends it to the other server.
        await page.goto(other.http_url + "/ui/invocations")
        await expect(page).to_have_url(other.http_url + "/ui/invocations")
        await expect(page.locator("body")).to_contain_text(IDENTITY["operator"])
    finally:
        await other.stop(grace=0)
    await secured.stop(grace=0)
    restarted = await App.start(config)
    try:
        await page.goto(restarted.http_url + "/ui/invocations")
        await expect(page).to_have_url(restarted.http_url + "/ui/invocations")
    finally:
        await restarted.stop(grace=0)
