"""Each ``trader-ops`` command imports only what it needs (issue 21 item 7: every
command, ``--version`` included, took 2.3-3.1 s importing the web stack, Redis, pandas
and the exchange calendars). Checked by what is in ``sys.modules`` after a command runs
in a fresh interpreter, never by timing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = (
    "fastapi",
    "uvicorn",
    "starlette",
    "numpy",
    "pandas",
    "exchange_calendars",
    "redis",
    "aiohttp",
    "apprise",
    "opentelemetry.sdk",
    "prometheus_client",
)
PROBE = """
import json, sys
from app.cli import main
sys.argv = ["trader-ops", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def _modules_after(args: list[str], tmp_path: Path) -> set[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADEROPS_", "OTEL_"))}
    env.update(TRADEROPS_DATA_DIR=str(tmp_path), PYTHONPATH=str(ROOT))
    r = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    last = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "[]"
    assert last.startswith("["), r.stderr
    return set(json.loads(last))


def _heavy(modules: set[str], allowed: tuple[str, ...] = ()) -> list[str]:
    return [h for h in HEAVY if h not in allowed and h in modules]


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["config", "show"]])
def test_light_commands_import_nothing_heavy(args: list[str], tmp_path: Path) -> None:
    assert _heavy(_modules_after(args, tmp_path)) == []


def test_version_does_not_even_load_the_settings(tmp_path: Path) -> None:
    modules = _modules_after(["--version"], tmp_path)
    assert "pydantic_settings" not in modules and "app.config" not in modules


def test_kairos_list_imports_the_calendars_but_not_the_web_stack(tmp_path: Path) -> None:
    modules = _modules_after(["kairos", "list"], tmp_path)
    assert "exchange_calendars" in modules  # it shows the next run in exchange sessions
    needed = ("numpy", "pandas", "exchange_calendars", "aiohttp", "prometheus_client")
    assert _heavy(modules, allowed=needed) == []  # no fastapi, uvicorn, redis, apprise, otel sdk
