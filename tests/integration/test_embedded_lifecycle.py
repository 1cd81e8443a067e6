"""The embedded stack's Redis (issue 15): stops with ``trader-ops run`` on SIGTERM, dies
with it on SIGKILL, never two on one data directory, a stale one stopped and reported,
a password, and its URL found by the other CLI commands. Real processes throughout."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis as sync_redis

from app.embedded import EmbeddedRedis, find_redis_server, stop_process
from tests.servers import free_port

BIN = Path(sys.executable).parent


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEROPS_")}
    env.update(
        TRADEROPS_DATA_DIR=str(data_dir),
        TRADEROPS_LOG_LEVEL="WARNING",
        TRADEROPS_KAIROS_JOBS=str(data_dir / "no-jobs"),
    )
    return env


def _start(
    data_dir: Path, port: int, *, own_group: bool = False, **env: str
) -> subprocess.Popen[bytes]:
    """``own_group``: its own process group, as a terminal's foreground job, so Ctrl-C
    (SIGINT to the whole group) can be sent without hitting the test runner."""
    return subprocess.Popen(
        [str(BIN / "trader-ops"), "run", "--port", str(port)],
        env={**_env(data_dir), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=own_group,
    )


def _wait_up(proc: subprocess.Popen[bytes], port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, (proc.stdout.read() if proc.stdout else b"").decode()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError("trader-ops run did not come up")


def _redis_pid(data_dir: Path) -> int:
    return int(json.loads((data_dir / "redis" / "embedded.json").read_text())["redis_pid"])


def _alive(pid: int) -> bool:
    try:
        return b"redis-server" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return False


def _redis_servers_on(directory: Path) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:  # redis-server rewrites its title but works in its --dir
            title = (proc / "cmdline").read_bytes()
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if b"redis-server" in title and cwd == str(directory):
            pids.append(int(proc.name))
    return pids


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path, int]]:
    data_dir, port = tmp_path / "data", free_port()
    proc = _start(data_dir, port)
    try:
        _wait_up(proc, port)
        yield proc, data_dir, port
    finally:
        if proc.poll() is None:
            stop_process(proc)
        for pid in _redis_servers_on(data_dir / "redis"):
            os.kill(pid, signal.SIGKILL)


def test_sigterm_stops_the_embedded_redis(stack: tuple[subprocess.Popen[bytes], Path, int]) -> None:
    proc, data_dir, _ = stack
    pid = _redis_pid(data_dir)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    assert _gone_within(pid, 10), "redis-server outlived trader-ops run after SIGTERM"
    assert not (data_dir / "redis" / "redis.url").exists()


def test_kill_9_takes_redis_along_and_the_next_run_is_the_only_one(
    stack: tuple[subprocess.Popen[bytes], Path, int],
) -> None:
    proc, data_dir, _ = stack
    pid = _redis_pid(data_dir)
    proc.kill()
    proc.wait(timeout=10)
    assert _gone_within(pid, 10), "redis-server outlived a SIGKILLed trader-ops run"
    port = free_port()
    again = _start(data_dir, port)
    try:
        _wait_up(again, port)
        assert len(_redis_servers_on(data_dir / "redis")) == 1
    finally:
        stop_process(again)


def _cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "trader-ops"), *args],
        env=_env(data_dir),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_second_run_on_the_same_directory_is_refused_and_leaves_the_first_alone(
    stack: tuple[subprocess.Popen[bytes], Path, int],
) -> None:
    """Issue 21 item 3: the refused run's clean-up deleted the first run's redis.url and
    embedded.json, and `journal status` then looked for Redis at the default URL."""
    _, data_dir, _ = stack
    files = {
        name: (data_dir / "redis" / name).read_text() for name in ("redis.url", "embedded.json")
    }
    second = _start(data_dir, free_port())
    out, _ = second.communicate(timeout=30)
    assert second.returncode == 1
    lines = [line for line in out.decode().splitlines() if line.strip()]
    assert len(lines) == 1, out.decode()
    assert "another trader-ops run" in lines[0] and str(data_dir) in lines[0]
    assert len(_redis_servers_on(data_dir / "redis")) == 1
    for name, text in files.items():
        assert (data_dir / "redis" / name).read_text() == text, f"{name} changed or removed"
    status = _cli(data_dir, "journal", "status", "--json")
    assert status.returncode == 0, status.stderr
    assert "backlog" in json.loads(status.stdout)


def test_the_embedded_redis_needs_its_password_and_other_commands_find_it(
    stack: tuple[subprocess.Popen[bytes], Path, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, data_dir, _ = stack
    url = (data_dir / "redis" / "redis.url").read_text().strip()
    assert (data_dir / "redis" / "redis.url").stat().st_mode & 0o077 == 0
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    with pytest.raises(sync_redis.AuthenticationError):
        sync_redis.Redis(port=port).ping()
    assert sync_redis.Redis.from_url(url).ping()
    for key in [k for k in os.environ if k.startswith("TRADEROPS_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("TRADEROPS_DATA_DIR", str(data_dir))
    from app.cli_support import settings_or_exit

    assert settings_or_exit().redis_url == url


def test_a_stale_redis_on_the_directory_is_stopped_and_reported(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "data", free_port()
    directory = data_dir / "redis"
    stale = EmbeddedRedis(directory, binary=find_redis_server())
    stale.start()  # what an older trader-ops left behind
    assert stale.proc is not None
    stale_pid = stale.proc.pid
    (directory / "embedded.json").write_text(json.dumps({"redis_pid": stale.proc.pid}))
    proc = _start(data_dir, port)
    try:
        _wait_up(proc, port)
        assert stale.proc.wait(timeout=10) is not None
        assert _redis_servers_on(directory) == [_redis_pid(data_dir)] != [stale_pid]
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        stale.stop()
    assert (
        f"stopped a stale redis-server (pid {stale.proc.pid if stale.proc else ''}" in out.decode()
        or "stopped a stale redis-server" in out.decode()
    )


def test_config_show_redacts_the_password_of_the_discovered_redis(
    stack: tuple[subprocess.Popen[bytes], Path, int],
) -> None:
    """Issue 21 item 4: the URL found in redis.url was printed with its password, as
    `[default]`."""
    _, data_dir, _ = stack
    url = (data_dir / "redis" / "redis.url").read_text().strip()
    password = url.split("://:", 1)[1].split("@", 1)[0]
    port = url.rsplit(":", 1)[1].split("/")[0]
    shown = _cli(data_dir, "config", "show")
    assert shown.returncode == 0, shown.stderr
    assert password not in shown.stdout + shown.stderr
    row = next(x for x in shown.stdout.splitlines() if x.startswith("TRADEROPS_REDIS_URL "))
    assert f"127.0.0.1:{port}" in row and "redis.url" in row and "[default]" not in row, row


def _children(pid: int) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            stat = (proc / "stat").read_text()
            if proc.name.isdigit() and int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append((proc / "cmdline").read_bytes().decode(errors="replace"))
        except (OSError, ValueError, IndexError):
            continue
    return found


def test_ctrl_c_stops_quietly_and_the_banner_offers_no_missing_docs(tmp_path: Path) -> None:
    """Issue 21 item 7: Ctrl-C printed a KeyboardInterrupt traceback from the history
    worker process, and the banner advertised /docs, which is off by default (404)."""
    data_dir, port = tmp_path / "data", free_port()
    proc = _start(data_dir, port, own_group=True)
    try:
        _wait_up(proc, port)
        now = int(time.time())
        history = httpx.get(
            f"http://127.0.0.1:{port}/udf/history",
            params={"symbol": "AAPL", "resolution": "D", "from": now - 300 * 86_400, "to": now},
            timeout=30,
        )
        assert history.json()["s"] == "ok"
        assert any("multiprocessing" in c for c in _children(proc.pid)), "no history worker"
        assert httpx.get(f"http://127.0.0.1:{port}/docs", timeout=5).status_code == 404
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            stop_process(proc)
        for pid in _redis_servers_on(data_dir / "redis"):
            os.kill(pid, signal.SIGKILL)
    text = out.decode()
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text
    assert "trader-ops stopped" in text, text
    assert "/docs" not in text, text


def test_the_banner_offers_docs_when_they_are_on(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "data", free_port()
    proc = _start(data_dir, port, TRADEROPS_API_DOCS="true")
    try:
        _wait_up(proc, port)
        assert httpx.get(f"http://127.0.0.1:{port}/docs", timeout=5).status_code != 404
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert f"http://127.0.0.1:{port}/docs" in out.decode(), out.decode()
