"""The console's test call and history table, with calls placed through the real Asterisk 22
(SIPp answers as extension 1001 and as the carrier trunk)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.async_api import expect

from tests.conftest import Api
from tests.helpers.sipp import Sipp
from tests.integration.browser.conftest import screenshot, signed_in
from tests.integration.service import CONTACT, EXTENSION_PORT, TRUNK_PORT, history

pytestmark = [pytest.mark.browser, pytest.mark.asterisk]


async def test_test_call_hang_up_and_history_table(
    service: Api, sipp: Callable[..., Sipp], new_page: Callable[..., Any],
) -> None:
    agent = sipp("uas_answer.xml", EXTENSION_PORT)
    sipp("uas_answer.xml", TRUNK_PORT)
    line = await service.create(name="Front desk", extension="1001")
    page = await signed_in(service, new_page)
    await page.get_by_role("link", name="Test call with Front desk").click()
    await page.get_by_label("Number to call (contact)").fill("not a number")
    await page.get_by_role("button", name="Call").click()
    # The service refuses the contact; the console shows why, on the field.
    contact_error = page.locator("#contact-error")
    await expect(contact_error).not_to_be_empty()
    await expect(page.get_by_label("Number to call (contact)")).to_have_attribute(
        "aria-invalid", "true")

    await page.get_by_label("Number to call (contact)").fill(CONTACT)
    await page.get_by_role("button", name="Call").click()
    await expect(page.locator(".call-status")).to_have_text("Connected.", timeout=20_000)
    assert agent.wait_for_invite().from_user == CONTACT
    await screenshot(page, "console-test-call.png")
    await page.get_by_role("button", name="Hang up").click()
    await expect(page.locator(".call-status")).to_have_text(
        re.compile(r"^Ended after \d+ s\.$"), timeout=20_000)
    await expect(page.get_by_role("button", name="Hang up")).to_be_hidden()
    agent.wait_for_request("BYE")

    (item,) = await history(service, line["id"])
    await page.get_by_role("link", name="History of this click-to-call").click()
    table = page.get_by_role("table")
    await expect(table.get_by_role("caption")).to_have_text("1 call, newest first")
    headers = await table.get_by_role("columnheader").all_inner_texts()
    assert headers == ["Time", "Contact", "Result", "Cause", "Talk time", "Failed leg"]
    (row,) = await table.locator("tbody tr").all()
    cells = await row.get_by_role("cell").all_inner_texts()
    assert cells[1:4] == [CONTACT, "success", item["hangup_cause"]]
    assert item["hangup_cause"] == "HANGUP_REQUESTED"
    assert re.fullmatch(r"\d+ s", cells[4])
    await screenshot(page, "console-history.png")


async def test_operator_sees_a_visitors_call_live_and_hangs_it_up(
    service: Api, sipp: Callable[..., Sipp], new_page: Callable[..., Any],
) -> None:
    sipp("uas_answer.xml", EXTENSION_PORT)
    trunk = sipp("uas_answer.xml", TRUNK_PORT)
    c2c = await service.create(name="Web line", extension="1001", auth_required=False)
    page = await signed_in(service, new_page)
    await page.get_by_role("link", name="History of Web line").click()
    await expect(page.get_by_text("No call in progress.")).to_be_visible()

    # A visitor's call (anonymous connect, as the widget makes it).
    status, body, _ = await service.call(
        "POST", f"{service.base}/{c2c['id']}/connect", {"contact": CONTACT}, token="")
    assert status == 202
    call_id = body["data"]["outbound_call_id"]
    live = page.get_by_role("table", name="Calls in progress")
    await expect(live.get_by_role("row").filter(has_text=CONTACT)).to_contain_text(
        "Connected.", timeout=20_000)
    status, body, _ = await service.call("GET", f"{service.base}/{c2c['id']}/calls")
    (in_flight,) = body["data"]
    assert (in_flight["call_id"], in_flight["state"]) == (call_id, "bridged")
    assert in_flight["call_token"]
    await screenshot(page, "console-live-call.png")

    await page.get_by_role("button", name=f"Hang up the call with {CONTACT}").click()
    await expect(page.get_by_text("No call in progress.")).to_be_visible(timeout=20_000)
    await expect(live).to_be_hidden()
    trunk.wait_for_request("BYE")
    ended = page.get_by_role("table", name=re.compile("newest first"))
    await expect(ended.locator("tbody tr")).to_have_count(1)
    await expect(ended.locator("tbody tr")).to_contain_text("HANGUP_REQUESTED")
    (item,) = await history(service, c2c["id"])
    assert (item["call_id"], item["authenticated"]) == (call_id, False)
