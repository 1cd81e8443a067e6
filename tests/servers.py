"""Real servers for tests, started on free loopback ports and torn down afterwards.

Under CI (CI=true) a missing server binary is a failure, never a skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from app.embedded import EmbeddedRedis

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_binary(name: str) -> str:
    """Path of ``name``; under CI a missing binary fails the test, locally it skips."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} not found on PATH (run `make setup`)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    port: int, timeout: float = 10.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before port {port} opened")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"port {port} did not open within {timeout}s")


class RedisServer(EmbeddedRedis):
    """The stack's own embedded redis-server (AOF on, restartable), with the binary the
    set-up installs: under CI a missing one fails the test instead of falling back."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        super().__init__(directory, port or free_port(), binary=require_binary("redis-server"))


@contextmanager
def redis_server(directory: Path) -> Iterator[RedisServer]:
    server = RedisServer(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()
