"""``GET /ui``: the memory browser's shell pages, its static files and their security headers.

The HTML routes render templates without touching any store or reading any key: every datum
on the pages comes from the authenticated JSON API, called by ``static/core.js`` and each
page's own script. The routes are left out of the OpenAPI schema, so the API's contract (and
its schemathesis test) is unchanged.
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


def _page(request: Request, template: str, title: str, script: str | None) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    return templates.TemplateResponse(
        request,
        template,
        {
            "title": title,
            "script": script,
            "root": root,
            "static": f"{root}{UI_PREFIX}/static",
            "version": __version__,
        },
        headers={"Cache-Control": "no-store"},
    )


# The browser's pages: path under /ui -> (template, title, the page's script beside core.js).
# Each is the same static page whatever the query; the browser fetches the data with the key
# it holds.
PAGES = {
    # the tenant's stats, the stack's health; memories browsed or searched, by type and scope
    "": ("overview.html", "Memories", "memories.js"),
    "/signin": ("signin.html", "Sign in", None),  # the API key is kept in sessionStorage only
    "/memory": ("memory.html", "Memory", "memory.js"),  # ?coord=: payload, scopes, links, delete
    "/items": ("items.html", "Items", "items.js"),  # namespaces, items newest first or searched
    "/item": ("item.html", "Item", "items.js"),  # ?namespace=&key=: one item's whole value
    # conversations by scope; one conversation (?id=): its messages in conversation order
    "/conversations": ("conversations.html", "Conversations", "conversations.js"),
    "/conversation": ("conversation.html", "Conversation", "conversations.js"),
}


def _add_page(path: str, template: str, title: str, script: str | None) -> None:
    def page(request: Request) -> HTMLResponse:
        return _page(request, template, title, script)

    name = template.removesuffix(".html")
    router.add_api_route(path, page, methods=["GET"], response_class=HTMLResponse, name=name)


for _path, (_template, _title, _script) in PAGES.items():
    _add_page(_path, _template, _title, _script)


def install_ui(app: FastAPI) -> None:
    """Serve the memory browser from ``app``: pages, static files and their headers."""
    app.include_router(router)
    app.mount(f"{UI_PREFIX}/static", StaticFiles(directory=_HERE / "static"), name="ui-static")
    app.add_middleware(
        SecurityHeadersMiddleware, prefixes=(UI_PREFIX,), policy=CONTENT_SECURITY_POLICY
    )
