"""``GET /ui``: the memory browser's shell pages, its static files and their security headers.

The HTML routes render templates without touching any store or reading any key: every datum
on the pages comes from the authenticated JSON API, called by ``static/ui.js``. The routes
are left out of the OpenAPI schema, so the API's contract (and its schemathesis test) is
unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from somafractalmemory import __version__
from somafractalmemory.api.security_headers import SecurityHeadersMiddleware

UI_PREFIX: Final = "/ui"
_HERE = Path(__file__).parent
# Self only: no inline script or style, no framing, forms post nowhere else.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
templates = Jinja2Templates(directory=_HERE / "templates")
router = APIRouter(prefix=UI_PREFIX, include_in_schema=False)


def _page(request: Request, template: str, title: str) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    return templates.TemplateResponse(
        request,
        template,
        {
            "title": title,
            "root": root,
            "static": f"{root}{UI_PREFIX}/static",
            "version": __version__,
        },
        headers={"Cache-Control": "no-store"},
    )


# The browser's pages: path under /ui -> (template, title). Each is the same static page; the
# browser fetches the data with the key it holds.
PAGES = {
    "": ("overview.html", "Memories"),  # the tenant's stats, the stack's health, search
    "/signin": ("signin.html", "Sign in"),  # the API key is kept in sessionStorage only
    "/items": ("items.html", "Items"),  # namespaces, and search under a prefix
    "/memory": ("memory.html", "Memory"),  # one memory (?coord=): payload, links, delete
}


def _add_page(path: str, template: str, title: str) -> None:
    def page(request: Request) -> HTMLResponse:
        return _page(request, template, title)

    name = template.removesuffix(".html")
    router.add_api_route(path, page, methods=["GET"], response_class=HTMLResponse, name=name)


for _path, (_template, _title) in PAGES.items():
    _add_page(_path, _template, _title)


def install_ui(app: FastAPI) -> None:
    """Serve the memory browser from ``app``: pages, static files and their headers."""
    app.include_router(router)
    app.mount(f"{UI_PREFIX}/static", StaticFiles(directory=_HERE / "static"), name="ui-static")
    app.add_middleware(
        SecurityHeadersMiddleware, prefixes=(UI_PREFIX,), policy=CONTENT_SECURITY_POLICY
    )
