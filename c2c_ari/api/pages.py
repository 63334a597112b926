"""The browser pages: the operator's console (`/console/`) and the "Call me" widget script
(`/widget.js`) that other sites embed.

Both are built from `web/` (`npm --prefix web ci && npm --prefix web run build`) into
`c2c_ari/static/`; this module only serves those files. They are not part of the `/v2` API,
so the OpenAPI document does not list them.
"""

from __future__ import annotations

from importlib import resources
from typing import NamedTuple

from aiohttp import web

CONSOLE_PATH = "/console/"
WIDGET_PATH = "/widget.js"
BUILD_HINT = "npm --prefix web ci && npm --prefix web run build"

# What web/build.mjs writes.
_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}

# The console loads nothing but its own files and talks only to this service.
CONSOLE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


class Asset(NamedTuple):
    body: bytes
    content_type: str


def load_assets() -> dict[str, Asset]:
    """Every built file by name (they are small, so kept in memory: no path from a request
    ever reaches the file system)."""
    folder = resources.files("c2c_ari").joinpath("static")
    assets: dict[str, Asset] = {}
    if not folder.is_dir():
        return assets
    for entry in folder.iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and suffix in _TYPES:
            assets[entry.name] = Asset(entry.read_bytes(), _TYPES[suffix])
    return assets


_ASSETS: web.AppKey[dict[str, Asset]] = web.AppKey("page_assets", dict)


def _serve(request: web.Request, name: str, headers: dict[str, str]) -> web.Response:
    asset = request.app[_ASSETS].get(name)
    if asset is None:
        if name in ("index.html", "widget.js"):
            # A source checkout that skipped the front-end build: say how to fix it.
            return web.Response(
                status=503, text=f"The web pages are not built: run `{BUILD_HINT}`.\n")
        raise web.HTTPNotFound()
    return web.Response(body=asset.body, content_type=asset.content_type,
                        charset="utf-8", headers=headers)


async def console_page(request: web.Request) -> web.Response:
    return _serve(request, "index.html", {
        "Content-Security-Policy": CONSOLE_CSP, "Cache-Control": "no-cache",
        "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff",
    })


async def console_asset(request: web.Request) -> web.Response:
    return _serve(request, request.match_info["name"], {
        "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff",
    })


async def widget_script(request: web.Request) -> web.Response:
    # Pages on other sites load it with a plain <script> tag; a short cache keeps updates
    # reaching them.
    return _serve(request, "widget.js", {
        "Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff",
        "Cross-Origin-Resource-Policy": "cross-origin",
    })


async def to_console(request: web.Request) -> web.Response:
    raise web.HTTPFound(CONSOLE_PATH)


def add_routes(app: web.Application) -> None:
    app[_ASSETS] = load_assets()
    app.router.add_get("/", to_console)
    app.router.add_get("/console", to_console)
    app.router.add_get(CONSOLE_PATH, console_page)
    app.router.add_get(CONSOLE_PATH + "{name:[A-Za-z0-9_-]+\\.[a-z]+}", console_asset)
    app.router.add_get(WIDGET_PATH, widget_script)
