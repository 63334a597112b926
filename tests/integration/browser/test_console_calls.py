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
from tests.integration.browser.conftest import screenshot
from tests.integration.browser.test_console import signed_in
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
