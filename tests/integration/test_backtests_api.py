"""The backtests API over real HTTP: runs written by the backtest's own writer into
TRADEROPS_BACKTEST_DIR, listed newest first, their files served from an allow-list and
nothing else (no traversal, no symlink out), the report with a no-script policy."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx
import orjson
import pytest

from app.datahub.app import create_app
from tests.apps import serve, settings_for
from tests.fakes.backtest_runs import write_run
from tests.servers import RedisServer

ADMIN = "backtests-admin-key"
NOW = time.time()


@dataclass
class Hub:
    http: httpx.AsyncClient
    root: Path
    older: Path
    newer: Path


@pytest.fixture
async def hub(redis_srv: RedisServer, tmp_path: Path) -> AsyncIterator[Hub]:
    root = tmp_path / "backtests"
    older = write_run(root, "momentum", date(2026, 11, 2), date(2026, 11, 6), 120.0, NOW - 3600)
    newer = write_run(
        root, "momentum+meanrev", date(2026, 12, 1), date(2026, 12, 4), -80.0, NOW - 60
    )
    settings = settings_for(
        redis_srv.url, admin_api_key=ADMIN, execution_in_datahub=False, backtest_dir=root
    )
    async with (
        serve(create_app(settings)) as url,
        httpx.AsyncClient(base_url=url, timeout=10, headers={"X-API-Key": ADMIN}) as http,
    ):
        yield Hub(http, root, older, newer)


async def test_runs_are_listed_newest_first_with_their_figures(hub: Hub) -> None:
    (hub.root / "no-summary").mkdir()  # not a run
    (hub.root / "stray.txt").write_text("x")
    (hub.root / "bad name").mkdir()
    (hub.root / "bad name" / "summary.json").write_text("{}")
    (hub.root / "broken").mkdir()
    (hub.root / "broken" / "summary.json").write_text("{not json")
    r = await hub.http.get("/api/v1/backtests")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    runs = r.json()["backtests"]
    assert [run["name"] for run in runs] == [hub.newer.name, hub.older.name]
    assert hub.newer.name == "momentum+meanrev-2026-12-01-2026-12-04"
    summary = orjson.loads((hub.older / "summary.json").read_bytes())
    older = runs[1]
    assert older == {
        "name": "momentum-2026-11-02-2026-11-06",
        "from": "2026-11-02T00:00:00+00:00",
        "to": "2026-11-06T23:59:59+00:00",
        "net_pnl": 120.0,
        "return_pct": summary["return_pct"],
        "trades": 1,
        "max_drawdown": summary["metrics"]["max_drawdown"],
        "max_drawdown_pct": summary["metrics"]["max_drawdown_pct"],
        "modified": pytest.approx(NOW - 3600),
        "files": [
            "report.html",
            "summary.json",
            "orders.csv",
            "fills.csv",
            "fills_tradenote.csv",
            "equity.csv",
        ],
    }
    assert older["return_pct"] == pytest.approx(0.12)
    assert older["max_drawdown"] == 50.0
    assert runs[0]["net_pnl"] == -80.0 and runs[0]["trades"] == 1
    assert (await hub.http.get("/api/v1/backtests", params={"limit": 1})).json()[
        "backtests"
    ] == runs[:1]


async def test_no_directory_yet_is_an_empty_list(redis_srv: RedisServer, tmp_path: Path) -> None:
    settings = settings_for(
        redis_srv.url,
        admin_api_key=ADMIN,
        execution_in_datahub=False,
        data_dir=tmp_path,  # backtest_dir unset: <data_dir>/backtests, not created yet
    )
    async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as http:
        r = await http.get("/api/v1/backtests", headers={"X-API-Key": ADMIN})
        assert r.status_code == 200 and r.json() == {"backtests": []}


async def test_the_report_is_served_as_html_that_runs_no_script(hub: Hub) -> None:
    r = await hub.http.get(f"/api/v1/backtests/{hub.older.name}/report")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.content == (hub.older / "report.html").read_bytes()
    assert "<title>Backtest momentum</title>" in r.text
    csp = [d.strip() for d in r.headers["content-security-policy"].split(";")]
    assert "default-src 'none'" in csp and "sandbox" in csp
    assert "style-src 'unsafe-inline'" in csp  # the report's own CSS renders
    assert not any(d.startswith("script-src") for d in csp)
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("file", "media_type"),
    [
        ("summary.json", "application/json"),
        ("orders.csv", "text/csv; charset=utf-8"),
        ("fills.csv", "text/csv; charset=utf-8"),
        ("fills_tradenote.csv", "text/csv; charset=utf-8"),
        ("equity.csv", "text/csv; charset=utf-8"),
    ],
)
async def test_the_allowed_files_with_their_types(hub: Hub, file: str, media_type: str) -> None:
    r = await hub.http.get(f"/api/v1/backtests/{hub.newer.name}/{file}")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == media_type
    assert r.content == (hub.newer / file).read_bytes()
    assert r.headers["content-disposition"] == f'attachment; filename="{hub.newer.name}-{file}"'
    assert r.headers["cache-control"] == "no-store"


async def test_nothing_else_is_served(hub: Hub, tmp_path: Path) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text("do not serve\n")
    outside = tmp_path / "outside-run"
    outside.mkdir()
    (outside / "summary.json").write_text('{"net_pnl": 1}')
    (outside / "report.html").write_text("<title>outside</title>")
    (hub.root / "linked").symlink_to(outside, target_is_directory=True)
    (hub.older / "fills.csv").unlink()
    (hub.older / "fills.csv").symlink_to(secret)  # a run's file linked out of the directory
    (hub.older / "replay.csv").write_text("not on the list\n")
    (hub.root / ".hidden").mkdir()
    (hub.root / ".hidden" / "summary.json").write_text("{}")
    names = [r["name"] for r in (await hub.http.get("/api/v1/backtests")).json()["backtests"]]
    assert names == [hub.newer.name, hub.older.name]  # not the symlinked run
    assert (
        "fills.csv" not in (await hub.http.get("/api/v1/backtests")).json()["backtests"][1]["files"]
    )
    run = hub.older.name
    # (a literal "/../" is resolved by the client: these are what reaches the server)
    for path in (
        f"/api/v1/backtests/{run}/fills.csv",  # the symlinked file
        f"/api/v1/backtests/{run}/replay.csv",
        f"/api/v1/backtests/{run}/report.html",  # (the report is /report)
        f"/api/v1/backtests/{run}/%2e%2e%2fsecret.csv",
        "/api/v1/backtests/linked/report",
        "/api/v1/backtests/linked/summary.json",
        "/api/v1/backtests/%2e%2e/report",
        "/api/v1/backtests/..%2fsecret.csv/summary.json",
        f"/api/v1/backtests/{run}%2f..%2f..%2foutside-run/summary.json",
        "/api/v1/backtests/.hidden/summary.json",
        "/api/v1/backtests/bad%20name/summary.json",
        "/api/v1/backtests/nope/report",
        "/api/v1/backtests/%2e/summary.json",
    ):
        r = await hub.http.get(path)
        assert r.status_code == 404, (path, r.status_code, r.text)
        assert "do not serve" not in r.text and "<title>outside" not in r.text


@pytest.mark.parametrize("key", [None, "wrong-key"])
async def test_the_admin_key_is_required(hub: Hub, key: str | None) -> None:
    headers = {"X-API-Key": key} if key else {}
    async with httpx.AsyncClient(base_url=str(hub.http.base_url), headers=headers) as http:
        for path in (
            "/api/v1/backtests",
            f"/api/v1/backtests/{hub.older.name}/report",
            f"/api/v1/backtests/{hub.older.name}/fills.csv",
            "/api/v1/backtests/nope/report",
        ):
            r = await http.get(path)
            assert r.status_code == 401, (path, r.text)
            assert "AAPL" not in r.text


async def test_the_report_frame_is_an_empty_page_that_runs_no_script(hub: Hub) -> None:
    r = await hub.http.get("/report-frame", headers={"X-API-Key": ""})
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert "<body></body>" in r.text
    csp = [d.strip() for d in r.headers["content-security-policy"].split(";")]
    assert "default-src 'none'" in csp and "sandbox allow-same-origin" in csp
    assert "frame-ancestors 'self'" in csp
    assert not any(d.startswith("script-src") for d in csp)
    assert r.headers["x-frame-options"] == "SAMEORIGIN"
