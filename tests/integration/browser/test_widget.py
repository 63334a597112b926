"""The "Call me" widget on a page of another origin, in headless Chromium.

The tests marked `asterisk` place real calls: the service is connected to the real Asterisk 22,
SIPp answers as the agent's phone (extension 1001) and as the carrier trunk.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.conftest import Api
from tests.helpers.sipp import Sipp
from tests.integration.browser.conftest import (
    Site,
    axe_violations,
    screenshot,
    shop_page,
    signed_in,
    widget_snippet,
)
from tests.integration.service import CONTACT, EXTENSION_PORT, TRUNK_PORT, history

pytestmark = pytest.mark.browser

# Every text the widget's status line shows, in order (the widget's own words, as a visitor
# would read them).
RECORD_STATUS = """() => {
  window.seen = [];
  const status = document.querySelector('.c2c-ari-widget').shadowRoot
    .querySelector('[role=status]');
  new MutationObserver(() => window.seen.push(status.textContent))
    .observe(status, {childList: true, characterData: true, subtree: true});
}"""


async def open_widget(api: Api, site: Site, new_page: Callable[..., Any],
                      c2c_id: str, **options: Any) -> Page:
    site.html = shop_page(widget_snippet(str(api.client.make_url("/")), api.account_id, c2c_id))
    page: Page = await new_page(**options)
    await page.goto(site.url)
    await expect(page.get_by_role("button", name="Call me")).to_be_visible()
    await page.evaluate(RECORD_STATUS)
    return page


async def call_me(page: Page, number: str = CONTACT) -> None:
    await page.get_by_label("Your phone number").fill(number)
    await page.get_by_role("button", name="Call me").click()


@pytest.mark.asterisk
async def test_widget_places_a_call_and_shows_its_progress(
    service: Api, sipp: Callable[..., Sipp], new_page: Callable[..., Any], other_site: Site,
) -> None:
    agent = sipp("uas_answer.xml", EXTENSION_PORT)
    trunk = sipp("uas_answer_then_bye.xml", TRUNK_PORT, duration_ms=2500)
    c2c = await service.create(name="Shop", extension="1001", auth_required=False,
                               allowed_origins=[other_site.origin])
    page = await open_widget(service, other_site, new_page, c2c["id"])
    await call_me(page, "+49 (30) 123-456")  # as people write it: CONTACT is dialled
    status = page.get_by_role("status")
    await expect(status).to_have_text("Connected.", timeout=20_000)
    await screenshot(page, "widget-connected.png", "main")
    await expect(status).to_have_text(re.compile(r"^Ended after \d+ s\.$"), timeout=20_000)
    await screenshot(page, "widget-ended.png", "main")

    seen = [text for text in await page.evaluate("window.seen") if text]
    # The stream may open after the first step; what is shown is in the call's order.
    steps = ["Starting the call…", "Calling our agent…", "Calling you…", "Connected."]
    shown = [text for text in seen if text in steps]
    assert shown == sorted(shown, key=steps.index) and "Connected." in shown
    assert seen[-1].startswith("Ended after")
    assert agent.wait_for_invite().from_user == CONTACT
    assert trunk.wait_for_invite().request_user == CONTACT
    (item,) = await history(service, c2c["id"])
    assert (item["result"], item["authenticated"]) == ("success", False)
    # The button is ready for another call.
    await expect(page.get_by_role("button", name="Call me")).to_be_enabled()


@pytest.mark.asterisk
async def test_widget_says_why_a_call_failed(
    service: Api, sipp: Callable[..., Sipp], new_page: Callable[..., Any], other_site: Site,
) -> None:
    sipp("uas_ring_no_answer.xml", EXTENSION_PORT)
    trunk = sipp("uas_answer.xml", TRUNK_PORT)
    c2c = await service.create(extension="1001", auth_required=False, timeout=2,
                               allowed_origins=[other_site.origin])
    page = await open_widget(service, other_site, new_page, c2c["id"])
    await call_me(page)
    await expect(page.get_by_role("status")).to_have_text(
        "Ended: our agent did not answer.", timeout=20_000)
    assert not trunk.invites()  # the visitor was never called


@pytest.mark.asterisk
async def test_a_visitor_cannot_read_or_hang_up_a_call_it_did_not_start(
    service: Api, sipp: Callable[..., Sipp], new_page: Callable[..., Any], other_site: Site,
) -> None:
    sipp("uas_answer.xml", EXTENSION_PORT)
    sipp("uas_answer.xml", TRUNK_PORT)
    c2c = await service.create(extension="1001", auth_required=False,
                               allowed_origins=[other_site.origin])
    first = await open_widget(service, other_site, new_page, c2c["id"])
    async with first.expect_response(re.compile(r"/connect$")) as connected:
        await call_me(first)
    call_id = (await (await connected.value).json())["data"]["outbound_call_id"]
    await expect(first.get_by_role("status")).to_have_text("Connected.", timeout=20_000)
    call_path = f"{service.base}/{c2c['id']}/calls/{call_id}"
    call_url = str(service.client.make_url(call_path))

    # Another visitor, on the same site, who even knows the call's id.
    second = await open_widget(service, other_site, new_page, c2c["id"])
    attempts = await second.evaluate("""async (callUrl) => {
      const status = async (url, init) => {
        try { return (await fetch(url, init)).status; } catch { return 'blocked'; }
      };
      const events = () => new Promise((done) => {
        const source = new EventSource(callUrl + '/events');
        source.addEventListener('status', () => { source.close(); done('read'); });
        source.onerror = () => { source.close(); done('refused'); };
      });
      return {
        read: await status(callUrl),
        forged_query: await status(callUrl + '?call_token=' + 'A'.repeat(43)),
        forged_header: await status(callUrl, {headers: {'X-Call-Token': 'A'.repeat(43)}}),
        events: await events(),
        hang_up: await status(callUrl, {method: 'DELETE'}),
      };
    }""", call_url)
    assert attempts["read"] == attempts["forged_query"] == attempts["forged_header"] == 401
    assert attempts["events"] == "refused"
    # DELETE is not among the methods the widget routes allow across origins.
    assert attempts["hang_up"] == "blocked"
    # The first visitor's call went on as if nothing happened.
    status, body, _ = await service.call("GET", call_path)
    assert (status, body["data"]["state"]) == (200, "bridged")
    await expect(first.get_by_role("status")).to_have_text("Connected.")
    # The operator can hang it up (authenticated); the first visitor sees it end.
    status, _, _ = await service.call("DELETE", call_path)
    assert status == 200
    await expect(first.get_by_role("status")).to_have_text(
        re.compile(r"^Ended after \d+ s\.$"), timeout=20_000)


async def test_widget_is_refused_on_an_origin_not_allowed(
    api: Api, new_page: Callable[..., Any], other_site: Site,
) -> None:
    c2c = await api.create(auth_required=False, allowed_origins=["https://shop.example"])
    page = await open_widget(api, other_site, new_page, c2c["id"])
    await call_me(page)
    await expect(page.get_by_role("status")).to_have_text(
        "The call service cannot be reached right now.")
    # Allowed, the same request reaches the service (which has no Asterisk here: 503).
    status, _, _ = await api.call("PATCH", f"{api.base}/{c2c['id']}",
                                  {"allowed_origins": [other_site.origin]})
    assert status == 200
    await call_me(page)
    await expect(page.get_by_role("status")).to_have_text(
        "Calls are not possible right now: try again later.")


async def test_widget_on_a_click_to_call_that_needs_a_token(
    api: Api, new_page: Callable[..., Any], other_site: Site,
) -> None:
    c2c = await api.create(auth_required=True, allowed_origins=[other_site.origin])
    page = await open_widget(api, other_site, new_page, c2c["id"])
    await call_me(page)
    await expect(page.get_by_role("status")).to_have_text("This call button is not available.")


async def test_widget_asks_for_a_number_and_is_accessible(
    api: Api, new_page: Callable[..., Any], other_site: Site,
) -> None:
    c2c = await api.create(auth_required=False, allowed_origins=[other_site.origin])
    page = await open_widget(api, other_site, new_page, c2c["id"], bypass_csp=True)
    await page.get_by_role("button", name="Call me").click()
    await expect(page.get_by_role("status")).to_have_text("Enter your phone number.")
    await expect(page.get_by_label("Your phone number")).to_be_focused()
    await expect(page.get_by_label("Your phone number")).to_have_attribute("aria-invalid", "true")
    assert await axe_violations(page) == []
    await screenshot(page, "widget.png", "main")


async def test_widget_works_on_a_site_with_a_strict_content_security_policy(
    api: Api, new_page: Callable[..., Any], other_site: Site,
) -> None:
    c2c = await api.create(auth_required=False, allowed_origins=[other_site.origin])
    service_origin = str(api.client.make_url("/")).rstrip("/")
    # What the README tells a site to allow: our script and our API, nothing inline.
    other_site.headers = {"Content-Security-Policy":
                          f"default-src 'none'; script-src {service_origin}; "
                          f"connect-src {service_origin}"}
    page = await open_widget(api, other_site, new_page, c2c["id"])
    button = page.get_by_role("button", name="Call me")
    # Styled (no inline <style> needed), and the connect goes through (503: no Asterisk here).
    assert await button.evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(0, 80, 179)"
    await call_me(page)
    await expect(page.get_by_role("status")).to_have_text(
        "Calls are not possible right now: try again later.")


async def test_widget_options_title_button_and_target(
    api: Api, new_page: Callable[..., Any], other_site: Site,
) -> None:
    c2c = await api.create(auth_required=False, allowed_origins=[other_site.origin])
    snippet = widget_snippet(str(api.client.make_url("/")), api.account_id, c2c["id"]).replace(
        "async>", 'data-title="Sales desk" data-button="Ring me" data-target="call-box" async>')
    other_site.html = shop_page(f'<aside><div id="call-box"></div></aside>{snippet}')
    page: Page = await new_page()
    await page.goto(other_site.url)
    box = page.locator("aside #call-box")
    await expect(box.get_by_role("button", name="Ring me")).to_be_visible()
    await expect(box.get_by_role("form", name="Sales desk")).to_be_visible()
    await expect(page.locator(".c2c-ari-widget")).to_have_count(0)


async def test_console_gives_the_snippet_that_works(
    api: Api, new_page: Callable[..., Any], other_site: Site,
) -> None:
    c2c = await api.create(name="Shop line")
    console = await signed_in(api, new_page)
    await console.get_by_role("link", name="Widget for Shop line").click()
    notes = console.get_by_role("note")
    await expect(notes).to_contain_text("Authentication required is on")
    await expect(notes).to_contain_text("No web origin may use it yet")
    await expect(notes).to_contain_text("Without a whitelist")
    snippet = await console.get_by_label(re.compile("^Paste this")).input_value()

    status, _, _ = await api.call("PATCH", f"{api.base}/{c2c['id']}", {
        "auth_required": False, "allowed_origins": [other_site.origin],
        "whitelist": ["^\\+49"]})
    assert status == 200
    await console.reload()
    await expect(console.get_by_role("note")).to_have_count(0)
    await expect(console.get_by_text(f"Allowed on: {other_site.origin}.")).to_be_visible()
    await screenshot(console, "console-widget-snippet.png")

    other_site.html = shop_page(snippet)
    page: Page = await new_page()
    await page.goto(other_site.url)
    await call_me(page)
    # It reached this service's connect for this click-to-call (no Asterisk here: 503).
    await expect(page.get_by_role("status")).to_have_text(
        "Calls are not possible right now: try again later.")
