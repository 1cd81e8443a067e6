"""Static checks of the container set-up: what cannot be pulled here (MongoDB, upstream TradeNote,
Grafana images) is validated from its definition, and the compose file's contract (health,
restart, limits, networks, ports, secrets, profiles) is checked for every service.
No engine needed, except where a test says so.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import ROOT, read_env
from tests.servers import IN_CI

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
CORE = {"datahub", "execution", "kairos", "redis"}
PROFILES = {
    "journal": {"journal", "tradenote", "mongo"},
    "observability": {"prometheus", "grafana", "alertmanager"},
    "notify": {"notify"},
}
PUBLISHED = {"datahub": 8000, "grafana": 3000, "tradenote": 8080, "alertmanager": 9093}
# Not published, but with a route out (frontend): the channels are on the internet.
OUTBOUND = {"notify"}


def test_services_and_profiles() -> None:
    assert set(SERVICES) == CORE.union(*PROFILES.values())
    for name in CORE:
        assert "profiles" not in SERVICES[name], f"{name} is core: no profile"
    for profile, names in PROFILES.items():
        for name in names:
            assert SERVICES[name]["profiles"] == [profile]


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_service_has_health_restart_limits(name: str) -> None:
    svc = SERVICES[name]
    hc = svc["healthcheck"]
    assert hc["test"][0] == "CMD" and hc["interval"] and hc["timeout"] and hc["retries"]
    assert svc["restart"] == "unless-stopped"
    assert re.fullmatch(r"\d+[mg]", svc["mem_limit"])
    assert "no-new-privileges:true" in svc["security_opt"]
    for dep, cond in (svc.get("depends_on") or {}).items():
        assert cond == {"condition": "service_healthy"}, f"{name} -> {dep}"
        assert "healthcheck" in SERVICES[dep]


def test_only_datahub_grafana_tradenote_published_on_loopback_by_default() -> None:
    for name, svc in SERVICES.items():
        ports = svc.get("ports", [])
        if name in PUBLISHED:
            assert len(ports) == 1
            assert ports[0].startswith("${TRADEROPS_BIND:-127.0.0.1}:")
            assert ports[0].endswith(f":{PUBLISHED[name]}")
            assert "frontend" in svc["networks"] and "backend" in svc["networks"]
        else:
            assert not ports, f"{name} must not publish ports"
            want = ["backend", "frontend"] if name in OUTBOUND else ["backend"]
            assert svc["networks"] == want, name
    assert COMPOSE["networks"]["backend"]["internal"] is True


def test_app_services_share_one_image_chosen_by_command() -> None:
    for name in ("datahub", "execution", "kairos", "journal"):
        svc = SERVICES[name]
        assert svc["image"] == "${TRADEROPS_IMAGE:-localhost/trader-ops:latest}"
        assert svc["command"][0] == name
        assert svc["read_only"] is True and svc["cap_drop"] == ["ALL"]
        env = svc["environment"]
        assert env["TRADEROPS_REDIS_URL"] == "redis://redis:6379/0"
        assert env["TRADEROPS_HTTP_HOST"] == "0.0.0.0"
    assert SERVICES["kairos"]["environment"]["TRADEROPS_DATAHUB_URL"] == "http://datahub:8000"
    # intake in the datahub's workers; the account engines in their own service
    assert SERVICES["datahub"]["environment"]["TRADEROPS_EXECUTION_IN_DATAHUB"] == "false"
    assert SERVICES["datahub"]["command"][1:] == ["--workers", "${TRADEROPS_DATAHUB_WORKERS:-2}"]


def test_redis_aof_and_volume() -> None:
    redis = SERVICES["redis"]
    cmd = redis["command"]
    assert cmd[cmd.index("--appendonly") + 1] == "yes"
    assert "redis-data:/data" in redis["volumes"]


def test_secrets_come_from_the_environment_never_literals() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    for key in ("PASSPHRASE", "HMAC_KEY", "ADMIN_API_KEY", "MASTER_KEY", "PASSWORD"):
        for line in text.splitlines():
            if re.search(rf"{key}\w*:\s", line):
                assert "${" in line, f"literal secret? {line.strip()}"


def test_tradenote_and_mongo_definitions() -> None:
    """TradeNote's image cannot be pulled here: check it against its documented interface."""
    tn, mongo, journal = SERVICES["tradenote"], SERVICES["mongo"], SERVICES["journal"]
    env = tn["environment"]
    assert set(env) >= {"MONGO_URI", "TRADENOTE_DATABASE", "TRADENOTE_PORT", "APP_ID", "MASTER_KEY"}
    assert env["TRADENOTE_PORT"] == "8080"
    assert env["MONGO_URI"].startswith("mongodb://${MONGO_USER:-tradenote}:${MONGO_PASSWORD")
    assert "@mongo:27017/" in env["MONGO_URI"] and "authSource=admin" in env["MONGO_URI"]
    assert mongo["environment"]["MONGO_INITDB_ROOT_PASSWORD"].startswith("${MONGO_PASSWORD")
    assert "mongo-data:/data/db" in mongo["volumes"]
    # The journal speaks to TradeNote's Parse Server with the same app id and master key.
    jenv = journal["environment"]
    assert jenv["TRADEROPS_TRADENOTE_URL"] == "http://tradenote:8080"
    assert jenv["TRADEROPS_TRADENOTE_APP_ID"] == env["APP_ID"]
    assert jenv["TRADEROPS_TRADENOTE_MASTER_KEY"] == env["MASTER_KEY"]
    assert "/parse/health" in " ".join(tn["healthcheck"]["test"])


def test_prometheus_mounts_config_with_rules_next_to_it() -> None:
    prom = SERVICES["prometheus"]
    assert "./deployment/prometheus:/etc/prometheus:ro" in prom["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prom["command"]
    config = yaml.safe_load((ROOT / "deployment/prometheus/prometheus.yml").read_text())
    assert config["rule_files"] == ["rules/*.yml"]
    assert list((ROOT / "deployment/prometheus/rules").glob("*.yml"))
    targets = {
        t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]
    }
    assert {"datahub:8000", "kairos:8001", "journal:8002"} <= targets


def test_grafana_provisioning_matches_the_mounts_and_services() -> None:
    """No Grafana image here: the provisioning files are checked against compose instead."""
    graf = SERVICES["grafana"]
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in graf["volumes"]
    assert "./grafana/dashboards:/var/lib/grafana/dashboards:ro" in graf["volumes"]
    assert graf["environment"]["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD")
    ds = yaml.safe_load((ROOT / "grafana/provisioning/datasources/prometheus.yaml").read_text())
    assert ds["apiVersion"] == 1
    (prom,) = ds["datasources"]
    assert prom["type"] == "prometheus" and prom["uid"] == "prometheus"
    assert prom["url"] == "http://prometheus:9090"  # the compose service and its port
    providers = yaml.safe_load(
        (ROOT / "grafana/provisioning/dashboards/trader-ops.yaml").read_text()
    )
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    dashboards = list((ROOT / "grafana/dashboards").glob("*.json"))
    assert dashboards
    for path in dashboards:
        board = json.loads(path.read_text())
        assert board["uid"] and board["title"]
        uids = {
            p["datasource"]["uid"]
            for p in board.get("panels", [])
            if isinstance(p.get("datasource"), dict) and "uid" in p["datasource"]
        }
        assert uids <= {"prometheus", "-- Grafana --", "grafana"}, (path.name, uids)


def podman_compose(tmp_path: Path) -> tuple[str, Path]:
    """podman-compose (a failure under CI when missing) and an env file with every secret."""
    exe = shutil.which("podman-compose") or str(ROOT / ".venv-compose/bin/podman-compose")
    if not Path(exe).exists():
        message = "podman-compose not installed (bash scripts/setup.sh)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    env_file = tmp_path / "env"
    env_file.write_text("".join(f"{k}=x{i}\n" for i, k in enumerate(SECRET_KEYS)))
    return exe, env_file


def test_compose_config_renders_with_podman_compose(tmp_path: Path) -> None:
    """The engine's own parser accepts the file with every profile (podman-compose here)."""
    exe, env_file = podman_compose(tmp_path)
    out = subprocess.run(
        [exe, "--env-file", str(env_file), "-f", str(ROOT / "docker-compose.yml"),
         "--profile", "journal", "--profile", "observability", "--profile", "notify", "config"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    rendered = yaml.safe_load(out)
    assert set(rendered["services"]) == set(SERVICES)
    assert rendered["services"]["datahub"]["ports"] == ["127.0.0.1:8000:8000"]


def test_tradenote_on_postgres_override_renders(tmp_path: Path) -> None:
    """The test-only override (TRADEROPS_TRADENOTE_DB=postgres): TradeNote's database URI
    names the postgres service, TradeNote waits for it (not for mongo), postgres has the
    contract every service has and publishes nothing."""
    exe, env_file = podman_compose(tmp_path)
    out = subprocess.run(
        [exe, "--env-file", str(env_file), "-f", str(ROOT / "docker-compose.yml"),
         "-f", str(ROOT / "deployment/compose/e2e-tradenote-postgres.yml"),
         "--profile", "journal", "config"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    services = yaml.safe_load(out)["services"]
    password = read_env(env_file)["MONGO_PASSWORD"]
    tn, pg = services["tradenote"], services["postgres"]
    assert (
        tn["environment"]["MONGO_URI"] == f"postgres://tradenote:{password}@postgres:5432/tradenote"
    )
    assert tn["environment"]["APP_ID"] == read_env(env_file)["TRADENOTE_APP_ID"]
    assert set(tn["depends_on"]) == {"postgres"}
    assert tn["read_only"] is True and tn["ports"] == ["127.0.0.1:8080:8080"]
    assert pg["environment"]["POSTGRES_PASSWORD"] == password
    assert pg["profiles"] == ["journal"] and "ports" not in pg
    assert pg["healthcheck"]["test"][0] == "CMD" and pg["restart"] == "unless-stopped"
    assert re.fullmatch(r"\d+[mg]", pg["mem_limit"]) and pg["read_only"] is True
    assert "no-new-privileges:true" in pg["security_opt"]
    assert any(v.endswith(":/var/lib/postgresql/data") for v in pg["volumes"])


def test_compose_sh_rejects_an_unknown_tradenote_db(tmp_path: Path) -> None:
    env = {**os.environ, "TRADEROPS_TRADENOTE_DB": "sqlite",
           "TRADEROPS_ENV_FILE": str(tmp_path / "e.env")}  # fmt: skip
    proc = subprocess.run(
        ["bash", "scripts/compose.sh", "ps"], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=30, check=False,
    )  # fmt: skip
    assert proc.returncode != 0 and "mongo or postgres" in proc.stderr


SECRET_KEYS = [
    "TRADEROPS_WEBHOOK_PASSPHRASE", "TRADEROPS_WEBHOOK_HMAC_KEY", "TRADEROPS_ADMIN_API_KEY",
    "TRADENOTE_APP_ID", "TRADENOTE_MASTER_KEY", "MONGO_PASSWORD", "GRAFANA_ADMIN_PASSWORD",
]  # fmt: skip


def test_env_file_is_written_once_0600_and_never_printed(tmp_path: Path) -> None:
    env_file = tmp_path / "sub.env"
    env = {**os.environ, "TRADEROPS_ENV_FILE": str(env_file)}
    first = subprocess.run(
        ["bash", "scripts/compose.sh", "env"], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=30, check=True,
    )  # fmt: skip
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    values = read_env(env_file)
    assert set(values) == set(SECRET_KEYS)
    assert all(len(v) >= 32 for v in values.values())
    assert len(set(values.values())) == len(values)
    for v in values.values():
        assert v not in first.stdout + first.stderr
    # A second run keeps every value; a missing key is added, the others untouched.
    lines = [ln for ln in env_file.read_text().splitlines() if not ln.startswith("GRAFANA_")]
    env_file.write_text("\n".join(lines) + "\n")
    second = subprocess.run(
        ["bash", "scripts/compose.sh", "env"], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=30, check=True,
    )  # fmt: skip
    again = read_env(env_file)
    assert {k: again[k] for k in values if k != "GRAFANA_ADMIN_PASSWORD"} == {
        k: v for k, v in values.items() if k != "GRAFANA_ADMIN_PASSWORD"
    }
    assert again["GRAFANA_ADMIN_PASSWORD"] not in second.stdout + second.stderr


def test_no_engine_gives_a_clear_message_with_the_install_command(tmp_path: Path) -> None:
    """PATH without docker and podman: `make up` says what to install instead of failing obscurely."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("bash", "dirname", "date", "timeout", "sed", "od", "tr", "grep", "cat", "chmod",
                 "mktemp", "rm", "cut", "env", "id"):  # fmt: skip
        found = shutil.which(tool)
        if found:
            (bindir / tool).symlink_to(found)
    env = {
        "PATH": str(bindir),
        "HOME": str(tmp_path),
        "TRADEROPS_ENV_FILE": str(tmp_path / "e.env"),
    }
    proc = subprocess.run(
        [str(bindir / "bash"), "scripts/compose.sh", "up"], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "apt-get install -y podman" in proc.stderr
    assert "docs.docker.com" in proc.stderr


def test_containerfile_contract() -> None:
    text = (ROOT / "Containerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=", text, re.M)
    assert text.count("\nFROM ") + text.startswith("FROM ") >= 3  # multi-stage
    assert re.search(r"^USER 10001", text, re.M)
    assert re.search(r"^HEALTHCHECK ", text, re.M)
    assert 'ENTRYPOINT ["trader-ops"]' in text
    assert "PIP_NO_CACHE_DIR=1" in text
    ignore = (ROOT / ".containerignore").read_text()
    assert ignore.startswith("#") and "\n**\n" in ignore and "!.env" not in ignore
    assert (ROOT / ".dockerignore").read_text() == ignore
