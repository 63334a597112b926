"""The console in headless Chromium against the service on a real SQLite file (no Asterisk:
these tests manage click-to-calls; test_widget.py places calls)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.conftest import Api
from tests.integration.browser.conftest import axe_violations, screenshot, signed_in

pytestmark = pytest.mark.browser


async def stored(api: Api, c2c_id: str) -> dict[str, Any]:
    status, body, _ = await api.call("GET", f"{api.base}/{c2c_id}")
    assert status == 200, body
    return body["data"]


async def only_clicktocall(api: Api) -> dict[str, Any]:
    status, body, _ = await api.call("GET", api.base)
    assert status == 200
    (item,) = body["data"]
    return await stored(api, item["id"])


async def test_sign_in_refuses_a_wrong_key_then_accepts_the_right_one(
    api: Api, new_page: Callable[..., Any]
) -> None:
    page: Page = await new_page()
    await page.goto(str(api.client.make_url("/")))  # / leads to the console
    await page.get_by_label("API key").fill("not-the-key")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_text("That API key is not valid.")).to_be_visible()
    await expect(page.get_by_label("API key")).to_have_attribute("aria-invalid", "true")
    await page.get_by_label("API key").fill(api.api_key)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_text("No click-to-calls yet.")).to_be_visible()
    await expect(page.get_by_text("Acme")).to_be_visible()
    # The session survives a reload (sessionStorage), and signing out ends it.
    await page.reload()
    await expect(page.get_by_role("heading", name="Click-to-calls")).to_be_visible()
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_label("API key")).to_be_visible()


async def test_the_form_is_drawn_from_the_served_schema(
    api: Api, new_page: Callable[..., Any]
) -> None:
    page = await signed_in(api, new_page)
    status, body, _ = await api.call("GET", "/v2/schemas/clicktocall")
    assert status == 200
    schema = body["data"]
    await page.get_by_role("link", name="New click-to-call").click()
    await expect(page.get_by_role("heading", name="New click-to-call")).to_be_visible()
    for name, prop in schema["properties"].items():
        if prop.get("type") == "object" and "properties" in prop:
            await expect(page.locator("legend", has_text=prop["title"])).to_be_visible()
            for sub in prop["properties"].values():
                await expect(page.get_by_label(sub["title"], exact=True)).to_be_visible()
            continue
        title = prop.get("title", name)
        field = page.get_by_label(re.compile(rf"^{re.escape(title)}( \(required\))?$"))
        await expect(field).to_be_visible()
        # Each field is described by the schema's own words.
        described_by = (await field.get_attribute("aria-describedby") or "").split()
        hint = await page.locator(f"#{described_by[0]}").inner_text()
        if "description" in prop:
            assert prop["description"] in hint
    # Defaults, enums and required come from the schema too.
    timeout_default = str(schema["properties"]["timeout"]["default"])
    await expect(page.get_by_label("Timeout")).to_have_value(timeout_default)
    await expect(page.get_by_label("Authentication required")).to_be_checked()
    await expect(page.get_by_label("Dial first")).to_have_text(
        re.compile("extension.*contact", re.S))
    await expect(page.get_by_label("Name (required)")).to_have_attribute("aria-required", "true")
    # Bounds too: the schema's maximum, and its maxLength.
    timeout_maximum = schema["properties"]["timeout"]["maximum"]
    await page.get_by_label("Timeout").fill(str(timeout_maximum + 1))
    await expect(page.locator("[data-field=timeout] .error")).to_have_text(
        f"Must be at most {timeout_maximum}.")
    name_max = schema["properties"]["name"]["maxLength"]
    await page.get_by_label("Name (required)").fill("n" * (name_max + 1))
    await expect(page.locator("[data-field=name] .error")).to_have_text(
        f"Too long: at most {name_max} characters.")


async def test_create_shows_schema_errors_before_submit_and_server_errors_on_the_field(
    api: Api, new_page: Callable[..., Any]
) -> None:
    page = await signed_in(api, new_page)
    writes: list[str] = []
    page.on("request", lambda r: writes.append(r.method) if r.method in ("PUT", "POST") else None)
    await page.get_by_role("link", name="New click-to-call").click()
    await page.get_by_label("Name (required)").fill("Sales line")
    extension = page.get_by_label("Extension (required)")
    await extension.fill("10 01/x")
    # The schema's pattern refuses it while it is typed, before any submit.
    extension_error = page.locator("[data-field=extension] .error")
    await expect(extension_error).to_have_text(re.compile("not allowed"))
    await expect(extension).to_have_attribute("aria-invalid", "true")
    timeout_error = page.locator("[data-field=timeout] .error")
    await page.get_by_label("Timeout").fill("soon")
    await expect(timeout_error).to_have_text("Must be a whole number.")
    await page.get_by_role("button", name="Create").click()
    summary = page.get_by_role("alert").filter(has_text="There is a problem")
    await expect(summary).to_be_visible()
    await expect(summary).to_contain_text("Extension")
    await expect(summary).to_contain_text("Timeout: Must be a whole number.")
    assert writes == []  # nothing was sent
    await screenshot(page, "console-form-errors.png")

    # Valid for the schema, refused by the service: RE2 has no backreferences.
    await extension.fill("1001")
    await page.get_by_label("Timeout").fill("45")
    await page.get_by_label("Whitelist").fill("^\\+1555\n(a)\\1")
    await page.get_by_role("button", name="Create").click()
    whitelist_error = page.locator("[data-field=whitelist] .error")
    await expect(whitelist_error).to_contain_text("Line 2:")
    await expect(whitelist_error).to_contain_text("regular expression")
    await expect(page.get_by_label("Whitelist")).to_have_attribute("aria-invalid", "true")
    assert writes == ["PUT"]
    _status, body, _ = await api.call("GET", api.base)
    assert body["data"] == []  # refused means nothing stored

    await page.get_by_label("Whitelist").fill("^\\+1555")
    await page.get_by_role("button", name="Create").click()
    await expect(page.get_by_role("status")).to_have_text("Created “Sales line”.")
    await expect(page.get_by_role("cell", name="Sales line", exact=True)).to_be_visible()
    doc = await only_clicktocall(api)
    assert (doc["name"], doc["extension"], doc["timeout"]) == ("Sales line", "1001", 45)
    assert doc["whitelist"] == ["^\\+1555"]
    assert doc["auth_required"] is True and doc["dial_first"] == "extension"
    await screenshot(page, "console-list.png")


async def test_json_fields_are_checked_against_the_referenced_schema(
    api: Api, new_page: Callable[..., Any]
) -> None:
    page = await signed_in(api, new_page)
    await page.get_by_role("link", name="New click-to-call").click()
    headers = page.get_by_label("Custom SIP headers")
    error = page.locator("[data-field=custom_sip_headers] .error")
    await headers.fill('{"X-Team": "blue"')
    await expect(error).to_contain_text("Not valid JSON")
    # custom_sip_headers is a $ref to its own schema document: its rules apply here too.
    await headers.fill('{"Via": "evil", "X-Team": "blue"}')
    await expect(error).to_have_text("Name “Via”: This name is not allowed.")
    await headers.fill('{"out": {"X-Team": "line\\nbreak"}}')
    await expect(error).to_have_text(
        "“out.X-Team”: Contains characters or a form that is not allowed here.")
    await headers.fill('{"out": {"X-Team": "blue"}}')
    await expect(error).to_be_hidden()
    await page.get_by_label("Name (required)").fill("Headers")
    await page.get_by_label("Extension (required)").fill("1001")
    await page.get_by_role("button", name="Create").click()
    await expect(page.get_by_role("cell", name="Headers", exact=True)).to_be_visible()
    assert (await only_clicktocall(api))["custom_sip_headers"] == {"out": {"X-Team": "blue"}}


async def test_edit_changes_only_what_was_changed(
    api: Api, new_page: Callable[..., Any]
) -> None:
    created = await api.create(name="Support", extension="2002", whitelist=["^\\+44"],
                               custom_application_vars={"team": "blue"},
                               media={"ignore_early_media": False})
    page = await signed_in(api, new_page)
    await page.get_by_role("link", name="Edit Support").click()
    await expect(page.get_by_label("Name (required)")).to_have_value("Support")
    await expect(page.get_by_label("Ignore early media")).not_to_be_checked()
    assert json.loads(await page.get_by_label("Custom application variables").input_value()) == {
        "team": "blue"}
    await page.get_by_label("Name (required)").fill("Support (UK)")
    await page.get_by_label("Dial first").select_option(label="contact")
    await page.get_by_role("button", name="Save changes").click()
    await expect(page.get_by_role("status")).to_have_text("Saved “Support (UK)”.")
    doc = await stored(api, created["id"])
    assert (doc["name"], doc["dial_first"]) == ("Support (UK)", "contact")
    assert doc["whitelist"] == ["^\\+44"]
    assert doc["custom_application_vars"] == {"team": "blue"}
    assert doc["media"] == {"ignore_early_media": False}


async def test_edit_refuses_to_overwrite_a_change_made_meanwhile(
    api: Api, new_page: Callable[..., Any]
) -> None:
    created = await api.create(name="Support", extension="2002")
    page = await signed_in(api, new_page)
    await page.get_by_role("link", name="Edit Support").click()
    await expect(page.get_by_label("Name (required)")).to_have_value("Support")
    status, _, _ = await api.call("PATCH", f"{api.base}/{created['id']}", {"extension": "2003"})
    assert status == 200
    await page.get_by_label("Name (required)").fill("Mine")
    await page.get_by_role("button", name="Save changes").click()
    await expect(page.get_by_role("alert")).to_contain_text("Someone else changed")
    doc = await stored(api, created["id"])
    assert (doc["name"], doc["extension"]) == ("Support", "2003")


async def test_delete_asks_first(api: Api, new_page: Callable[..., Any]) -> None:
    created = await api.create(name="Old line", extension="3003")
    page = await signed_in(api, new_page)
    page.once("dialog", lambda dialog: dialog.dismiss())
    await page.get_by_role("button", name="Delete Old line").click()
    await expect(page.get_by_role("cell", name="Old line", exact=True)).to_be_visible()
    assert (await api.call("GET", f"{api.base}/{created['id']}"))[0] == 200
    page.once("dialog", lambda dialog: dialog.accept())
    await page.get_by_role("button", name="Delete Old line").click()
    await expect(page.get_by_text("No click-to-calls yet.")).to_be_visible()
    await expect(page.get_by_role("status")).to_have_text("Deleted “Old line”.")
    assert (await api.call("GET", f"{api.base}/{created['id']}"))[0] == 404


async def test_a_deleted_click_to_call_says_so(api: Api, new_page: Callable[..., Any]) -> None:
    created = await api.create(name="Gone", extension="5005")
    page = await signed_in(api, new_page)
    assert (await api.call("DELETE", f"{api.base}/{created['id']}"))[0] == 200
    for view in ("edit", "history", "test"):
        await page.goto(str(api.client.make_url(f"/console/#/{view}/{created['id']}")))
        await expect(page.get_by_role("alert")).to_have_text(
            "That click-to-call does not exist: it may have been deleted.")


async def test_keyboard_only_and_no_serious_accessibility_violations(
    api: Api, new_page: Callable[..., Any]
) -> None:
    # bypass_csp only lets the test inject axe-core; the pages themselves are unchanged.
    page: Page = await new_page(bypass_csp=True)
    await page.goto(str(api.client.make_url("/console/")))
    assert await axe_violations(page) == []
    # Sign in and create a click-to-call with the keyboard alone.
    await expect(page.get_by_label("API key")).to_be_focused()
    await page.keyboard.type(api.api_key)
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Click-to-calls")).to_be_focused()
    await page.get_by_role("link", name="New click-to-call").focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="New click-to-call")).to_be_focused()
    await page.keyboard.press("Tab")
    await expect(page.get_by_label("Name (required)")).to_be_focused()
    await page.keyboard.type("Keyboard line")
    await page.keyboard.press("Tab")
    await page.keyboard.type("bad extension")
    await page.keyboard.press("Enter")  # submits the form
    # The error summary takes the focus; its link leads to the field.
    summary = page.get_by_role("alert").filter(has_text="There is a problem")
    await expect(summary).to_be_focused()
    assert await axe_violations(page) == []
    await page.keyboard.press("Tab")
    await page.keyboard.press("Enter")
    await expect(page.get_by_label("Extension (required)")).to_be_focused()
    await page.keyboard.press("Control+A")
    await page.keyboard.type("4004")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("cell", name="Keyboard line", exact=True)).to_be_visible()
    assert await axe_violations(page) == []
    assert (await only_clicktocall(api))["extension"] == "4004"


async def test_api_docs_page_renders_the_openapi_document(
    api: Api, new_page: Callable[..., Any]
) -> None:
    page: Page = await new_page(bypass_csp=False)
    await page.goto(str(api.client.make_url("/v2/docs")))
    status, doc, _ = await api.call("GET", "/v2/openapi.json")
    assert status == 200
    operations = page.locator("#operations > details")
    count = sum(1 for item in doc["paths"].values() for method in item
                if method in ("get", "put", "post", "patch", "delete"))
    await expect(operations).to_have_count(count)
    await expect(page.locator("#schemas")).to_contain_text("custom_sip_headers")
    await page.get_by_label("Filter operations").fill("history")
    await expect(operations.locator("visible=true")).to_have_count(1)
    await operations.locator("visible=true").locator("> summary").click()
    await expect(operations.locator("visible=true")).to_contain_text("created_from")
