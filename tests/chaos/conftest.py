"""Fault tests break their servers: each test gets its own redis-server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos.common import Datahub
from tests.servers import RedisServer
from tests.servers import redis_server as started_redis


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with started_redis(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def hub(redis_server: RedisServer, tmp_path: Path) -> Iterator[Datahub]:
    """A datahub process (execution on) over this test's Redis."""
    (tmp_path / "hub").mkdir()
    datahub = Datahub(redis_server.url, tmp_path / "hub")
    try:
        yield datahub
    finally:
        datahub.stop()
