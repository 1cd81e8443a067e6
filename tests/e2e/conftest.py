"""End-to-end fixtures: the real container stack under podman, built and started by the
project's own scripts (scripts/images.sh, scripts/compose.sh), always torn down.

The journal profile runs too: `scripts/images.sh tradenote` pulls TradeNote's and MongoDB's
images, or, with no registry, builds TradeNote from its source (TRADENOTE_SOURCE, the build
deployment/tradenote/build.py caches) and PostgreSQL from Debian's packages; the stack then runs
TradeNote on PostgreSQL (TRADEROPS_TRADENOTE_DB=postgres: the test-only override
deployment/compose/e2e-tradenote-postgres.yml).

Under CI (CI=true) a missing podman, or a TradeNote that cannot be built or started, fails
the run; elsewhere the stack tests are skipped with the command that installs podman (bash
scripts/setup.sh), and the journal tests when no TradeNote source is configured.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.servers import IN_CI, require_binary

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_SH = ROOT / "scripts" / "compose.sh"
IMAGES_SH = ROOT / "scripts" / "images.sh"
PROJECT = "trader-ops-e2e"

BUILD_TIMEOUT = float(os.environ.get("E2E_BUILD_TIMEOUT", "900"))
UP_TIMEOUT = float(os.environ.get("E2E_UP_TIMEOUT", "240"))
DOWN_TIMEOUT = 120.0
# The journal's TradeNote user: TradeNote's sign-up takes an e-mail address as the username.
TRADENOTE_USER = "e2e-trader@example.test"
NO_TRADENOTE_SOURCE = 3  # scripts/images.sh tradenote: no TradeNote source on this machine


_CONFIG: pytest.Config | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _CONFIG
    _CONFIG = config


def progress(msg: str) -> None:
    """Progress lines that show even under pytest's output capture (a long run stays legible)."""
    line = f"[e2e {time.strftime('%H:%M:%S')}] {msg}\n"
    capman = _CONFIG.pluginmanager.getplugin("capturemanager") if _CONFIG else None
    if capman is None:
        sys.stderr.write(line)
        return
    with capman.global_and_fixture_disabled():
        sys.stderr.write(line)
        sys.stderr.flush()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def read_env(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def run(
    args: list[str], *, env: dict[str, str] | None = None, timeout: float = 60, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}"
            f"\n--- stderr\n{proc.stderr[-3000:]}"
        )
    return proc


@dataclass
class Stack:
    env: dict[str, str]
    env_file: Path
    url: str
    secrets: dict[str, str]
    services: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    tradenote_url: str = ""
    tradenote_db: str = ""  # mongo | postgres
    journal_off: str = ""  # why the journal profile is not running (empty: it is)

    def container(self, service: str) -> str:
        out = run(
            [
                "podman", "ps", "-a", "--format", "{{.Names}}",
                "--filter", f"label=com.docker.compose.project={PROJECT}",
                "--filter", f"label=com.docker.compose.service={service}",
            ]
        ).stdout.split()  # fmt: skip
        assert out, f"no container for service {service}"
        return out[0]

    def exec(self, service: str, *cmd: str, timeout: float = 30) -> str:
        return run(["podman", "exec", self.container(service), *cmd], timeout=timeout).stdout

    def redis_cli(self, *args: str) -> str:
        return self.exec("redis", "redis-cli", "--raw", *args).strip()

    def compose(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return run(["bash", str(COMPOSE_SH), *args], env=self.env, timeout=timeout)

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            timeout=10,
            headers={"X-API-Key": self.secrets["TRADEROPS_ADMIN_API_KEY"]},
        )


def tradenote_images(env: dict[str, str], timings: dict[str, float]) -> tuple[str, str]:
    """Build (or pull) TradeNote's images: ("", db) when the journal profile can run, else
    (the reason, ""). Under CI a TradeNote that cannot be had is a failure."""
    progress("TradeNote images (scripts/images.sh tradenote; cached by version + build hash)")
    t0 = time.monotonic()
    proc = run(["bash", str(IMAGES_SH), "tradenote"], env=env, timeout=BUILD_TIMEOUT, check=False)
    timings["tradenote_images"] = time.monotonic() - t0
    if proc.returncode == NO_TRADENOTE_SOURCE and not IN_CI:
        reason = f"no TradeNote source (set TRADENOTE_SOURCE): {proc.stderr.strip()[-300:]}"
        progress(f"journal profile off: {reason}")
        return reason, ""
    if proc.returncode != 0:
        raise AssertionError(
            f"scripts/images.sh tradenote exited {proc.returncode}\n{proc.stderr[-3000:]}"
        )
    state = read_env(ROOT / "build" / "compose-images.env")
    image = env.get("TRADENOTE_IMAGE") or state.get("TRADENOTE_IMAGE", "")
    db = "postgres" if image.startswith("localhost/trader-ops-tradenote:") else "mongo"
    progress(f"TradeNote image {image} (on {db}) in {timings['tradenote_images']:.0f} s")
    return "", db


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_binary("podman")
    tmp = tmp_path_factory.mktemp("e2e")
    env_file = tmp / "stack.env"
    port = free_port()
    env = {
        **os.environ,
        "TRADEROPS_ENGINE": "podman",
        "COMPOSE_PROJECT_NAME": PROJECT,
        "TRADEROPS_ENV_FILE": str(env_file),
        "TRADEROPS_DATAHUB_PORT": str(port),
        "GRAFANA_PORT": str(free_port()),
        "TRADENOTE_PORT": str(free_port()),
        "TRADEROPS_PROFILES": "observability",
        "TRADEROPS_WAIT_TIMEOUT": str(int(UP_TIMEOUT) - 30),
    }
    timings: dict[str, float] = {}

    progress("building images (scripts/images.sh all; cached layers make this quick)")
    t0 = time.monotonic()
    run(["bash", str(IMAGES_SH), "all"], env=env, timeout=BUILD_TIMEOUT)
    timings["images"] = time.monotonic() - t0
    progress(f"images ready in {timings['images']:.0f} s")

    journal_off, tradenote_db = tradenote_images(env, timings)
    if not journal_off:
        env["TRADEROPS_PROFILES"] = "journal observability"
        env["TRADEROPS_TRADENOTE_DB"] = tradenote_db
        env["TRADEROPS_TRADENOTE_USERNAME"] = TRADENOTE_USER

    # A leftover stack from an interrupted run must not confuse this one.
    run(["bash", str(COMPOSE_SH), "down", "--volumes"], env=env, timeout=DOWN_TIMEOUT, check=False)
    try:
        progress(
            f"starting core + {env['TRADEROPS_PROFILES']} as project {PROJECT} "
            f"(datahub on 127.0.0.1:{port}"
            + (f", TradeNote on {tradenote_db}" if not journal_off else "")
            + ")"
        )
        t0 = time.monotonic()
        up = run(["bash", str(COMPOSE_SH), "up"], env=env, timeout=UP_TIMEOUT)
        timings["up"] = time.monotonic() - t0
        progress(f"stack healthy in {timings['up']:.0f} s")
        secrets = read_env(env_file)
        services = run(
            ["podman", "ps", "--format", '{{index .Labels "com.docker.compose.service"}}',
             "--filter", f"label=com.docker.compose.project={PROJECT}"]
        ).stdout.split()  # fmt: skip
        yield Stack(
            env, env_file, f"http://127.0.0.1:{port}", secrets, services, timings,
            tradenote_url=f"http://127.0.0.1:{env['TRADENOTE_PORT']}",
            tradenote_db=tradenote_db, journal_off=journal_off,
        )  # fmt: skip
        del up
    finally:
        progress("tearing the stack down (compose down --volumes)")
        t0 = time.monotonic()
        down = run(
            ["bash", str(COMPOSE_SH), "down", "--volumes"],
            env=env,
            timeout=DOWN_TIMEOUT,
            check=False,
        )
        progress(f"down in {time.monotonic() - t0:.0f} s (exit {down.returncode})")
        left = run(
            ["podman", "ps", "-aq", "--filter", f"label=com.docker.compose.project={PROJECT}"],
            check=False,
        ).stdout.split()
        if left:  # only our own containers, by id
            run(["podman", "rm", "-f", "-t", "5", *left], check=False, timeout=60)
