"""The uvicorn settings the datahub is served with: one place, used by the CLI and the tests."""

from __future__ import annotations

from typing import Any

import uvicorn
from fastapi import FastAPI

from app.config import Settings
from app.datahub.connguard import ConnectionLimits, guarded_protocol


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options for these settings, for one server in this process (the
    protocol class holds that server's per-address counts, so it is not picklable for
    ``uvicorn.run(workers=N)``)."""
    return {
        "host": settings.http_host,
        "port": settings.http_port,
        "log_config": None,
        "access_log": False,
        # X-Forwarded-For is honoured only from TRADEROPS_TRUSTED_PROXIES (app/datahub/security.py)
        "proxy_headers": False,
        # deflating every quote frame for every client costs more CPU than building it;
        # off unless asked for (a stream over a slow link)
        "ws_per_message_deflate": settings.ws_compression,
        # deadlines on reading a request and caps on connections (app/datahub/connguard.py)
        "http": guarded_protocol(ConnectionLimits.from_settings(settings)),
    }


def uvicorn_config(app: FastAPI, **overrides: Any) -> uvicorn.Config:
    """``app`` from ``create_app`` (its settings are on ``app.state``); ``overrides`` for tests."""
    options = server_options(app.state.settings) | {"lifespan": "on"}
    options.update(overrides)
    return uvicorn.Config(app, **options)
