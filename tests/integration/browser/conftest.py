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
from playwright.async_api import Browser, Page, async_playwright, expect

from c2c_ari import localasterisk
from c2c_ari.api import pages
from c2c_ari.localasterisk import LocalAsteriskError
from tests.conftest import Api

ROOT = Path(__file__).resolve().parents[3]
SCREENSHOTS = ROOT / "docs" / "screenshots"
AXE = ROOT / "web" / "node_modules" / "axe-core" / "axe.min.js"

# This machine's network is closed: without these, Chromium keeps trying to reach its
# vendor's services at start and in the background.
CHROMIUM_ARGS = [
    "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]


@pytest.fixture(scope="session", autouse=True)
def _pages_are_built() -> None:
    """The pages under test are the build of web/src: an older build would test old code."""
    sources = [*(ROOT / "web" / "src").iterdir(), ROOT / "web" / "build.mjs"]
    built = list((ROOT / "c2c_ari" / "static").glob("*"))
    if not built or max(f.stat().st_mtime for f in sources) > min(
            f.stat().st_mtime for f in built):
        pytest.fail(f"the web pages are not built from the current sources: run "
                    f"`{pages.BUILD_HINT}`", pytrace=False)


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


async def signed_in(api: Api, new_page: Callable[..., Any], **options: Any) -> Page:
    """A new page of the console, signed in to `api`'s account, on the list."""
    page: Page = await new_page(**options)
    await page.goto(str(api.client.make_url("/console/")))
    await page.get_by_label("API key").fill(api.api_key)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Click-to-calls")).to_be_visible()
    return page


async def screenshot(page: Page, name: str, selector: str | None = None) -> None:
    """The whole page, or only the element `selector` finds (for the widget)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    if selector is None:
        await page.screenshot(path=SCREENSHOTS / name, full_page=True)
    else:
        await page.locator(selector).screenshot(path=SCREENSHOTS / name)


async def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical accessibility violations on the page as it is now."""
    await page.add_script_tag(path=AXE)
    result = await page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        {"id": v["id"], "impact": v["impact"], "help": v["help"],
         "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"] if v["impact"] in ("serious", "critical")
    ]


class Site:
    """A customer's web site on another origin (another port): one page, set by the test
    once it knows the origin (the click-to-call's allowed_origins needs it first)."""

    def __init__(self) -> None:
        self.html = "<!doctype html><title>empty</title>"
        self.headers: dict[str, str] = {}
        self.server: TestServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("/"))

    @property
    def origin(self) -> str:
        return self.url.rstrip("/")

    async def index(self, request: web.Request) -> web.Response:
        return web.Response(text=self.html, content_type="text/html", headers=self.headers)


@pytest.fixture
async def other_site(aiohttp_server: Any) -> Site:
    site = Site()
    app = web.Application()
    app.router.add_get("/", site.index)
    site.server = await aiohttp_server(app)
    return site


def widget_snippet(service_url: str, account_id: str, c2c_id: str) -> str:
    """The tag a site pastes, as the README shows it."""
    return (f'<script src="{service_url.rstrip("/")}/widget.js" data-account="{account_id}" '
            f'data-clicktocall="{c2c_id}" async></script>')


def shop_page(snippet: str) -> str:
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<title>Example Shop</title></head><body><main><h1>Example Shop</h1>"
            "<p>Questions about an order? Leave your number and we call you right away.</p>"
            f"{snippet}</main></body></html>")
