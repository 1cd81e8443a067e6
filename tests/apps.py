"""Run real services in-process on free loopback ports (uvicorn, real sockets)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI

from app.datahub.server import uvicorn_config
from tests.servers import free_port


@asynccontextmanager
async def serve(app: FastAPI, port: int | None = None) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 and yield its base URL; lifespan runs for real."""
    port = port or free_port()
    config = uvicorn_config(app, host="127.0.0.1", port=port)
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    for _ in range(400):
        if server.started or task.done():
            break
        await asyncio.sleep(0.025)
    if task.done():
        task.result()
    if not server.started:
        raise TimeoutError("server did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)  # (the lifespan bounds its own stop steps)


def settings_for(redis_url: str, **overrides: Any) -> Any:
    from app.config import Settings

    values: dict[str, Any] = {"redis_url": redis_url, "log_format": "text"}
    values.update(overrides)
    return Settings(_env_file=None, **values)
