"""Static checks of what the playbook installs for Grafana and TradeNote but the molecule
scenario cannot start here (their images come from a registry this machine cannot reach):

- the grafana and tradenote roles' unit files, rendered by Ansible itself with the roles'
  defaults (ansible/tests/render-units.yml), for both database choices, pass
  ``systemd-analyze verify`` with no complaint;
- Grafana's provisioned datasource is the repository's, pointed at the host's Prometheus, and
  every dashboard in grafana/dashboards refers to it;
- the pinned images and versions are the ones docker-compose.yml and the journal tests use.

Molecule exercises the rest (TradeNote on PostgreSQL runs there; Grafana's unit is installed
and verified there too). Needs .venv-ansible (`make setup`); under CI a missing one fails.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.servers import IN_CI, require_binary
from tests.tradenote.build import TESTED_VERSION

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / "ansible" / "tests" / "render-units.yml"
ANSIBLE = ROOT / ".venv-ansible" / "bin" / "ansible-playbook"

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not ANSIBLE.exists():
        message = ".venv-ansible missing (run `make setup`)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    out = tmp_path_factory.mktemp("rendered-units")
    result = subprocess.run(
        [str(ANSIBLE), "-i", "localhost,", str(PLAYBOOK)],
        cwd=ROOT / "ansible",
        env={**os.environ, "RENDER_DIR": str(out), "ANSIBLE_NOCOLOR": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return out


def _defaults(role: str) -> dict[str, Any]:
    path = ROOT / "ansible" / "roles" / role / "defaults" / "main.yml"
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


def _compose_default(service: str) -> str:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    image = str(compose["services"][service]["image"])
    match = re.fullmatch(r"\$\{[A-Z_]+:-([^}]+)\}", image)
    assert match, image
    return match.group(1)


@pytest.mark.parametrize("variant", ["grafana", "tradenote-postgresql", "tradenote-mongodb"])
def test_units_pass_systemd_analyze_verify(rendered: Path, variant: str) -> None:
    require_binary("systemd-analyze")
    units = sorted((rendered / variant).glob("*.service")) + sorted(
        (rendered / variant).glob("*.timer")
    )
    assert units, f"nothing rendered for {variant}"
    # every ExecStart= binary must exist for verify: podman for the containers, node, pg_dump
    text = "\n".join(u.read_text() for u in units)
    for binary in sorted(set(re.findall(r"^Exec\w+=(/\S+)", text, re.MULTILINE))):
        if not Path(binary).exists():
            require_binary(Path(binary).name)
    result = subprocess.run(
        ["systemd-analyze", "verify", *map(str, units)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # a bad directive is only a warning for systemd: any output is a failure here
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), (
        result.stdout + result.stderr
    )


def test_units_never_hold_secrets_and_bind_loopback(rendered: Path) -> None:
    grafana = (rendered / "grafana" / "grafana.service").read_text()
    assert "GF_SECURITY_ADMIN_PASSWORD" not in grafana
    assert "--env-file=/etc/grafana/secrets.env" in grafana
    assert "--env=GF_SERVER_HTTP_ADDR=127.0.0.1" in grafana
    for variant in ["tradenote-postgresql", "tradenote-mongodb"]:
        unit = (rendered / variant / "tradenote.service").read_text()
        assert "MASTER_KEY=" not in unit and "MONGO_URI" not in unit
        assert "TRADENOTE_BIND_ADDRESS=127.0.0.1" in unit
        assert "/etc/tradenote/tradenote.env" in unit
    mongo = (rendered / "tradenote-mongodb" / "tradenote-mongodb.service").read_text()
    assert "--bind_ip=127.0.0.1" in mongo and "MONGO_INITDB_ROOT_PASSWORD" not in mongo


def test_backup_timer_runs_the_backup(rendered: Path) -> None:
    for variant in ["tradenote-postgresql", "tradenote-mongodb"]:
        timer = (rendered / variant / "tradenote-backup.timer").read_text()
        assert re.search(r"^OnCalendar=\S", timer, re.MULTILINE)
        assert "Persistent=true" in timer
        service = (rendered / variant / "tradenote-backup.service").read_text()
        assert "Type=oneshot" in service
        assert "-mtime +14 -delete" in service
    pg = (rendered / "tradenote-postgresql" / "tradenote-backup.service").read_text()
    # systemd expands $NAME itself: every shell variable must be written $$
    assert "pg_dump --format=custom" in pg and not re.search(r"(?<!\$)\$[a-z(]", pg)


def test_grafana_datasource_is_the_repositorys_with_the_hosts_prometheus(rendered: Path) -> None:
    host = yaml.safe_load((rendered / "grafana" / "prometheus.yaml").read_text())
    repo = yaml.safe_load(
        (ROOT / "grafana" / "provisioning" / "datasources" / "prometheus.yaml").read_text()
    )
    assert host["apiVersion"] == repo["apiVersion"] == 1
    (host_ds,) = host["datasources"]
    (repo_ds,) = repo["datasources"]
    assert host_ds["url"] == "http://127.0.0.1:9090"
    assert {k: v for k, v in host_ds.items() if k != "url"} == {
        k: v for k, v in repo_ds.items() if k != "url"
    }
    # the provider the role installs (verbatim) loads the directory the unit mounts
    provider = yaml.safe_load(
        (ROOT / "grafana" / "provisioning" / "dashboards" / "trader-ops.yaml").read_text()
    )
    path = provider["providers"][0]["options"]["path"]
    unit = (rendered / "grafana" / "grafana.service").read_text()
    assert f"--volume=/etc/grafana/dashboards:{path}:ro" in unit


def test_every_dashboard_uses_the_provisioned_datasource() -> None:
    dashboards = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
    assert len(dashboards) >= 5
    for path in dashboards:
        text = path.read_text()
        json.loads(text)
        uids = set(re.findall(r'"datasource":\s*\{[^}]*"uid":\s*"([^"]+)"', text))
        assert uids == {"prometheus"}, (path.name, uids)


def test_pinned_versions_match_compose_and_the_journal_tests() -> None:
    grafana = _defaults("grafana")
    tradenote = _defaults("tradenote")
    assert grafana["grafana_image"] == _compose_default("grafana")
    assert tradenote["tradenote_version"] == TESTED_VERSION
    assert tradenote["tradenote_image"].replace(
        "{{ tradenote_version }}", TESTED_VERSION
    ) == _compose_default("tradenote")
    assert tradenote["tradenote_mongodb_image"] == _compose_default("mongo")
