"""The console and widget files as the service serves them (the pages themselves are tested in
Chromium, tests/integration/browser)."""

from __future__ import annotations

from typing import Any

import pytest

from c2c_ari.api import pages

pytestmark = pytest.mark.skipif(
    not pages.load_assets(), reason=f"web pages not built: {pages.BUILD_HINT}")


async def test_root_leads_to_the_console(client: Any) -> None:
    for path in ("/", "/console"):
        response = await client.get(path, allow_redirects=False)
        assert (response.status, response.headers["Location"]) == (302, "/console/")


async def test_console_page_loads_only_its_own_files(client: Any) -> None:
    response = await client.get("/console/")
    assert response.status == 200
    assert response.content_type == "text/html"
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    html = await response.text()
    assert "console.js" in html and "http" not in html.replace("http-equiv", "")
    script = await client.get("/console/console.js")
    assert (script.status, script.content_type) == (200, "text/javascript")


async def test_widget_script_is_served_for_other_sites(client: Any) -> None:
    response = await client.get("/widget.js")
    assert (response.status, response.content_type) == (200, "text/javascript")
    assert response.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
    assert "max-age" in response.headers["Cache-Control"]


@pytest.mark.parametrize("path", [
    "/console/nothing.js", "/console/..%2Fapp.py", "/console/%2e%2e/pages.py",
    "/console/../api/pages.py", "/console/index.html.bak",
])
async def test_no_other_file_is_reachable(client: Any, path: str) -> None:
    response = await client.get(path)
    assert response.status == 404
    assert (await response.json())["error"] == "404"


async def test_an_unbuilt_checkout_says_how_to_build(client: Any) -> None:
    client.app[pages._ASSETS].clear()
    response = await client.get("/console/")
    assert response.status == 503
    assert pages.BUILD_HINT in await response.text()
