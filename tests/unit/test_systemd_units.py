"""The canonical systemd units (deployment/systemd) are sandboxed: exposure at most 2.0 ("OK")."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.servers import require_binary

UNITS_DIR = Path(__file__).resolve().parents[2] / "deployment" / "systemd"
UNITS = sorted(UNITS_DIR.glob("trader-ops-*.service"))
MAX_EXPOSURE = 2.0

REQUIRED = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "RestrictNamespaces": "yes",
    "MemoryDenyWriteExecute": "yes",
    "CapabilityBoundingSet": "",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
}


def _settings(unit: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_units_exist() -> None:
    assert {u.name for u in UNITS} == {
        "trader-ops-datahub.service",
        "trader-ops-execution.service",
        "trader-ops-kairos.service",
        "trader-ops-journal.service",
        "trader-ops-notify.service",
    }


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_unit_sandbox_settings(unit: Path) -> None:
    settings = _settings(unit)
    for key, value in REQUIRED.items():
        assert settings.get(key) == [value], (
            f"{unit.name}: {key}={value} expected, got {settings.get(key)}"
        )
    assert "@system-service" in settings["SystemCallFilter"]
    assert settings["User"] == ["trader-ops"]
    # Secrets come as credentials (drop-in), never through environment files or Environment=.
    assert not any(
        "PASSPHRASE" in v or "TOKEN" in v or "KEY" in v for v in settings.get("Environment", [])
    )


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_unit_exposure_at_most_2(unit: Path) -> None:
    systemd_analyze = require_binary("systemd-analyze")
    result = subprocess.run(
        [systemd_analyze, "security", "--offline=yes", "--threshold=20", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert result.returncode == 0, (
        f"{unit.name}: exposure {match.group(1)} > {MAX_EXPOSURE}\n{result.stdout}"
    )
    assert float(match.group(1)) <= MAX_EXPOSURE
