"""``GET /docs`` (Swagger UI) and ``GET /redoc`` (ReDoc), served whole by the application.

FastAPI's own pages load Swagger UI and ReDoc from a CDN (and ReDoc's fonts from Google), so
they are blank on a machine without internet. Here the assets come from the
``fastapi-offline`` package (it ships ``swagger-ui-bundle.js``, ``swagger-ui.css`` and
``redoc.standalone.js``), each page starts its viewer from a script file of ours, and the
pages and their files carry a Content-Security-Policy that lets nothing load from another
host, as ``/ui`` does. What the policy must allow beyond ``/ui``'s, and why:

- ``style-src 'unsafe-inline'``: ReDoc (styled-components) and Swagger UI insert ``<style>``
  elements and style attributes at run time; styles cannot run code.
- ``worker-src blob:``: ReDoc runs its search index in a worker made from a blob.
- ``img-src data:``: both draw their icons from ``data:`` URIs.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Final

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from somafractalmemory.api.security_headers import SecurityHeadersMiddleware

DOCS_URL: Final = "/docs"
REDOC_URL: Final = "/redoc"
STATIC_URL: Final = "/docs/static"
VENDOR_URL: Final = "/docs/vendor"
_HERE = Path(__file__).parent
VENDOR_DIR: Final = Path(fastapi_offline.__file__).parent / "static"
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; font-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" type="image/png" href="{vendor}/favicon.png">
<link rel="stylesheet" href="{static}/docs.css">
{head}
</head>
<body>
<div id="{element}" data-openapi-url="{openapi}"></div>
<script src="{vendor}/{bundle}"></script>
<script src="{static}/{init}"></script>
</body>
</html>
"""


def _page(request: Request, app: FastAPI, viewer: str) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    swagger = viewer == "swagger"
    html = _PAGE.format(
        title=escape(f"{app.title} - {'Swagger UI' if swagger else 'ReDoc'}"),
        vendor=escape(f"{root}{VENDOR_URL}"),
        static=escape(f"{root}{STATIC_URL}"),
        head=(
            f'<link rel="stylesheet" href="{escape(root + VENDOR_URL)}/swagger-ui.css">'
            if swagger
            else ""
        ),
        element="swagger-ui" if swagger else "redoc",
        openapi=escape(f"{root}{app.openapi_url}"),
        bundle="swagger-ui-bundle.js" if swagger else "redoc.standalone.js",
        init="swagger-init.js" if swagger else "redoc-init.js",
    )
    return HTMLResponse(html)


def install_docs(app: FastAPI) -> None:
    """Serve ``/docs`` and ``/redoc`` from ``app`` (create it with ``docs_url=None,
    redoc_url=None``): the pages, their files and their security headers."""

    @app.get(DOCS_URL, include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        return _page(request, app, "swagger")

    @app.get(REDOC_URL, include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        return _page(request, app, "redoc")

    app.mount(STATIC_URL, StaticFiles(directory=_HERE / "static"), name="docs-static")
    app.mount(VENDOR_URL, StaticFiles(directory=VENDOR_DIR), name="docs-vendor")
    app.add_middleware(
        SecurityHeadersMiddleware,
        prefixes=(DOCS_URL, REDOC_URL),
        policy=CONTENT_SECURITY_POLICY,
    )
