"""The uvicorn settings the datahub is served with: one place, used by the CLI and the tests."""

from __future__ import annotations

from typing import Any

import uvicorn
from fastapi import FastAPI


def uvicorn_config(app: FastAPI, **overrides: Any) -> uvicorn.Config:
    """``app`` from ``create_app`` (its settings are on ``app.state``); ``overrides`` for tests."""
    settings = app.state.settings
    options: dict[str, Any] = {
        "host": settings.http_host,
        "port": settings.http_port,
        "log_config": None,
        "access_log": False,
        "lifespan": "on",
        # X-Forwarded-For is honoured only from TRADEROPS_TRUSTED_PROXIES (app/datahub/security.py)
        "proxy_headers": False,
        # deflating every quote frame for every client costs more CPU than building it;
        # off unless asked for (a stream over a slow link)
        "ws_per_message_deflate": settings.ws_compression,
    }
    options.update(overrides)
    return uvicorn.Config(app, **options)
