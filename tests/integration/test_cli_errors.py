"""CLI commands against a stack that is not there: one line naming what could not be
reached, where, and which setting points there; non-zero exit (issue 15). Plus
``--version`` from the one version source."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from app import __version__
from tests.servers import free_port

BIN = Path(sys.executable).parent


def _run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("TRADEROPS_")}
    return subprocess.run(
        [str(BIN / "trader-ops"), *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    "args",
    [
        ("journal", "export", "--date", "2026-11-30"),
        ("journal", "status"),
        ("journal", "replay", "--dead-letters"),
    ],
)
def test_redis_unreachable_is_one_line(args: tuple[str, ...], tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    r = _run(
        *args,
        TRADEROPS_REDIS_URL=f"redis://127.0.0.1:{port}/0",
        TRADEROPS_DATA_DIR=str(tmp_path),
        TRADEROPS_TRADENOTE_URL="http://127.0.0.1:9",
        TRADEROPS_TRADENOTE_APP_ID="app",
        TRADEROPS_TRADENOTE_MASTER_KEY="master",
        TRADEROPS_TRADENOTE_USERNAME="trader",
    )
    assert r.returncode == 1, (r.stdout, r.stderr)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("trader-ops: cannot reach Redis at ")
    assert f"127.0.0.1:{port}" in lines[0] and "TRADEROPS_REDIS_URL" in lines[0]
    assert "Traceback" not in r.stdout + r.stderr


def test_version() -> None:
    r = _run("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"trader-ops {__version__}"


@pytest.mark.parametrize(
    "args", [("journal", "export", "--date", "2026-11-30"), ("journal", "status")]
)
def test_no_stack_running_names_the_data_directory_not_an_unset_variable(
    args: tuple[str, ...], tmp_path: Path
) -> None:
    """Issue 21 item 7: with `trader-ops run` stopped and TRADEROPS_REDIS_URL never set,
    the error blamed TRADEROPS_REDIS_URL; it should say no stack runs on the directory."""
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 6379)) == 0:
            pytest.skip("a Redis answers at the default address: the commands use it")
    data_dir = tmp_path / "data"
    r = _run(*args, TRADEROPS_DATA_DIR=str(data_dir))
    assert r.returncode == 1, (r.stdout, r.stderr)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    assert "TRADEROPS_REDIS_URL" not in lines[0].split(" or set ")[0], lines[0]
    assert f"no trader-ops run is running on {data_dir}" in lines[0], lines[0]
    assert "trader-ops run" in lines[0] and "Traceback" not in r.stderr
