"""Debian's Chromium, headless, driven by Playwright; the pages under test come from real
services listening on loopback ports.

Screenshots the README shows are written to docs/screenshots by the tests that reach those
screens, so they always show the current pages.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page, async_playwright

from c2c_ari import localasterisk
from c2c_ari.localasterisk import LocalAsteriskError

ROOT = Path(__file__).resolve().parents[3]
SCREENSHOTS = ROOT / "docs" / "screenshots"
AXE = ROOT / "web" / "node_modules" / "axe-core" / "axe.min.js"

# This machine's network is closed: without these, Chromium keeps trying to reach its
# vendor's services at start and in the background.
CHROMIUM_ARGS = [
    "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's chromium, installed with apt-get when it is missing (as root)."""
    if shutil.which("chromium") is None:
        try:
            localasterisk.ensure_host_packages({"chromium": "chromium"})
        except LocalAsteriskError as exc:
            pytest.skip(f"no chromium: {exc}")
    path = shutil.which("chromium")
    if path is None:
        pytest.skip("no chromium on PATH")
    return path


@pytest.fixture
async def browser(chromium_path: str) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


class PageErrors(list[str]):
    """Uncaught script errors and Content-Security-Policy refusals seen by a page."""

    def watch(self, page: Page) -> Page:
        page.on("pageerror", lambda exc: self.append(f"pageerror: {exc}"))
        page.on("console", lambda msg: self.append(f"console: {msg.text}")
                if "Content Security Policy" in msg.text else None)
        return page


@pytest.fixture
async def new_page(browser: Browser) -> AsyncIterator[Callable[..., Any]]:
    """`await new_page()` opens a page in a fresh browser context (its own storage, as a
    different visitor would have); after the test no page may have had a script error."""
    errors = PageErrors()
    contexts = []

    async def open_page(**options: Any) -> Page:
        context = await browser.new_context(
            viewport={"width": 1000, "height": 800}, **options)
        contexts.append(context)
        return errors.watch(await context.new_page())

    yield open_page
    for context in contexts:
        await context.close()
    assert errors == []


async def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=SCREENSHOTS / name, full_page=True)


async def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical accessibility violations on the page as it is now."""
    await page.add_script_tag(path=AXE)
    result = await page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        {"id": v["id"], "impact": v["impact"], "help": v["help"],
         "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"] if v["impact"] in ("serious", "critical")
    ]


@pytest.fixture
async def other_site(aiohttp_server: Any) -> Callable[..., Any]:
    """Serves one HTML page from another origin (another port): a customer's web site."""

    async def serve(html: str) -> TestServer:
        async def index(request: web.Request) -> web.Response:
            return web.Response(text=html, content_type="text/html")

        app = web.Application()
        app.router.add_get("/", index)
        return await aiohttp_server(app)

    return serve
