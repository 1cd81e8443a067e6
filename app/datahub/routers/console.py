"""The web console: ``GET /`` (index.html) and its bundle under ``/static``.

The bundle is built from ``web/`` (``make web``) into ``app/datahub/static`` and committed,
so the datahub serves it without Node and without any CDN. Bundles carry a content hash
in their name (``console-<HASH>.js``) and are cached for a year; index.html is
revalidated on every load (``no-cache`` + ETag) so a new build shows up at once.
No secret is ever in these files: the admin key is typed into the page and kept in the
tab's sessionStorage.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from starlette.datastructures import Headers
from starlette.responses import FileResponse
from starlette.staticfiles import NotModifiedResponse, StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

router = APIRouter(tags=["console"])

# explicit types: the platform's mimetypes table can be wrong (e.g. .js as text/plain)
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".txt": "text/plain; charset=utf-8",
}
HASHED = re.compile(r"-[A-Z0-9]{8,}\.[a-z0-9]+$")
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"

CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


# The frame the console shows a backtest report in (web/src/backtests.js): an empty page
# of its own origin whose policy lets the report's inline CSS apply (a srcdoc or blob:
# frame would inherit the console's, which refuses inline styles) and nothing else: no
# script (`sandbox` keeps only the same origin, so the console can fill it), no fetch,
# framed only by the console.
REPORT_FRAME = (
    b'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>report</title>'
    b"</head><body></body></html>"
)
REPORT_FRAME_HEADERS = {
    "Content-Security-Policy": "; ".join(
        [
            "default-src 'none'",
            "style-src 'unsafe-inline'",
            "img-src data:",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'self'",
            "sandbox allow-same-origin",
        ]
    ),
    "X-Frame-Options": "SAMEORIGIN",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": REVALIDATE,
}


class ConsoleFiles(StaticFiles):
    """StaticFiles with explicit content types and cache headers by file name."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        path = Path(full_path)
        response: Response = FileResponse(
            path,
            status_code=status_code,
            stat_result=stat_result,
            media_type=MEDIA_TYPES.get(path.suffix.lower()),
        )
        if self.is_not_modified(response.headers, Headers(scope=scope)):
            response = NotModifiedResponse(response.headers)
        response.headers["Cache-Control"] = IMMUTABLE if HASHED.search(path.name) else REVALIDATE
        response.headers["X-Content-Type-Options"] = "nosniff"
        if path.suffix == ".html":
            response.headers.update(PAGE_HEADERS)
        return response


files = ConsoleFiles(directory=STATIC_DIR, check_dir=False)

NOT_BUILT = (
    "trader-ops console is not built: run `make web` (npm ci && npm run build in web/).\n"
    "The APIs are unaffected: see /docs.\n"
)


@router.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
async def index(request: Request) -> Response:
    if not (STATIC_DIR / "index.html").is_file():
        return PlainTextResponse(NOT_BUILT, status_code=503, headers={"Cache-Control": "no-store"})
    return await files.get_response("index.html", request.scope)


@router.api_route("/report-frame", methods=["GET", "HEAD"], include_in_schema=False)
async def report_frame() -> Response:
    """An empty page the console fills with a backtest report (no secret, no data)."""
    return Response(
        REPORT_FRAME, media_type="text/html; charset=utf-8", headers=REPORT_FRAME_HEADERS
    )


@router.api_route("/static/{path:path}", methods=["GET", "HEAD"], include_in_schema=False)
async def static(request: Request, path: str) -> Response:
    """Files of the built console; anything outside ``app/datahub/static`` is a 404."""
    return await files.get_response(path, request.scope)
