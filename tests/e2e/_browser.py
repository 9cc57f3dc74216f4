"""Headless Chromium for the console's tests: Debian's /usr/bin/chromium driven by
Playwright (browsers cannot be downloaded here; `make test` installs the package). A
missing browser fails the tests: it is never a skip."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright

from tests.support import ROOT

CHROMIUM = os.environ.get("INVOCTL_CHROMIUM", "/usr/bin/chromium")
# Screenshots of every page the tests visit, for a reviewer to look at.
SHOTS = Path(os.environ.get("INVOCTL_SCREENSHOTS", ROOT / "test-output" / "console"))
TIMEOUT_MS = 20_000


def _chromium() -> str:
    path = shutil.which(CHROMIUM) or CHROMIUM
    assert Path(path).exists(), f"{CHROMIUM} is missing: `make test` installs Debian's chromium"
    return path


@pytest.fixture
async def browser():
    path = _chromium()
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=path, args=["--no-sandbox"])
        yield b
        await b.close()


@pytest.fixture
async def page(browser):
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    p = await context.new_page()
    yield p
    await context.close()


async def shot(page: Page, name: str) -> Path:
    os.makedirs(SHOTS, exist_ok=True)
    out = SHOTS / f"{re.sub(r'[^a-z0-9_-]+', '-', name.lower())}.png"
    await page.screenshot(path=str(out), full_page=True)
    return out
