"""The public contract in the OpenAPI document: the webhook's body (the route reads the
raw bytes, so FastAPI cannot infer it), the admin key as an API-key security scheme,
and ``/docs`` / ``/redoc`` only when ``TRADEROPS_API_DOCS=true``, with Swagger UI's assets
served by the datahub (``pip install 'trader-ops[docs]'``: swagger-ui-bundle), never a CDN.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles

from app.models.alerts import Alert

REF = "#/components/schemas/{model}"


def alert_request_body() -> dict[str, Any]:
    """``openapi_extra`` for the webhook route: the alert JSON (or TradingView's text)."""
    return {
        "requestBody": {
            "required": True,
            "description": "TradingView's alert message: a JSON object (passphrase in the body, "
            "or an HMAC-SHA256 of the raw body in X-Signature; signed alerts carry `time`)",
            "content": {"application/json": {"schema": {"$ref": REF.format(model="Alert")}}},
        }
    }


def install(app: FastAPI, *, docs: bool) -> None:
    """Add the alert schema to the components; mount local Swagger UI when ``docs``."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        alert = Alert.model_json_schema(ref_template=REF)
        components.update(alert.pop("$defs", {}))
        components["Alert"] = alert
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    if docs:
        _mount_docs(app)


def _mount_docs(app: FastAPI) -> None:
    try:
        from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-not-found]
    except ImportError:

        @app.get("/docs", include_in_schema=False)
        async def no_assets() -> PlainTextResponse:
            return PlainTextResponse(
                "API docs need Swagger UI's assets: pip install 'trader-ops[docs]'. "
                "The OpenAPI document is at /openapi.json.",
                status_code=503,
            )

        return
    app.mount("/docs-assets", StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="trader-ops datahub",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon-32x32.png",
        )
