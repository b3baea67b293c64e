"""/management/docs: Swagger UI served by the api-server itself, from the swagger-ui-py package.

FastAPI's own docs page loads Swagger UI from a CDN and stays blank without the internet (and sends
every visit to a third party). swagger-ui-py (Apache-2.0) ships Swagger UI 5, which renders the
OpenAPI 3.1 documents FastAPI writes; swagger-ui-bundle's 4.x does not.
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs/assets"


def swagger_ui_dist() -> Path:
    """The Swagger UI files inside the installed swagger_ui package (found without importing it)."""
    spec = find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("swagger-ui-py is not installed (requirements.txt)")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


def add_docs(app: FastAPI, *, title: str) -> None:
    """Serve Swagger UI for `app` at /docs, every file from this server."""
    app.mount(ASSETS, StaticFiles(directory=swagger_ui_dist()), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=title,
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon-32x32.png",
        )
