"""The playground page: plain HTML, JS and CSS files beside this module, served by the Gateway.

No build step and nothing fetched from elsewhere (the page works offline): the browser talks
to the same public API as any client (``/v1/models``, ``/v1/chat/completions`` streamed).
The page holds no secret, so it and its assets are open without an API key (see
``serve.errors.OPEN_PATHS``); the key a user types stays in the page's memory. The routes are
left out of the OpenAPI document: they are a user interface, not part of the API contract.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.exceptions import HTTPException

FOLDER = Path(__file__).parent
ASSET_PREFIX = "/playground/"
# Everything servable, read once: no part of a request's path ever reaches the file system.
_ASSETS = {p.name: p.read_bytes() for p in FOLDER.iterdir() if p.suffix in (".html", ".js", ".css")}
# The page may load only its own files and talk only to this server.
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


def _file(name: str) -> Response:
    if name not in _ASSETS:
        raise HTTPException(404)
    media = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return Response(_ASSETS[name], media_type=media, headers=_HEADERS)


@router.get("/")
async def page() -> Response:
    return _file("index.html")


@router.get(ASSET_PREFIX + "{name}")
async def asset(name: str) -> Response:
    return _file(name)
