"""deployment/alertmanager: the exchange-closed time intervals and the rendered config.

- The committed exchange_closed.yml is exactly what the generator produces from
  exchange_calendars today (same start year and span), and covers next year.
- Known NYSE closed days and half days are in it; regular sessions are not.
- render.py includes only the channels the environment fills in, reads *_FILE secrets,
  rejects half-filled channels, writes the config 0600 and the runbook base into the
  template. amtool checks the result in scripts/test-observability.sh.
"""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.alertmanager import AM_DIR, gen, render

COMMITTED: dict[str, Any] = yaml.safe_load((AM_DIR / "exchange_closed.yml").read_text())


def _intervals(name: str) -> list[dict[str, Any]]:
    return next(t["time_intervals"] for t in COMMITTED["time_intervals"] if t["name"] == name)


def _has_day(entries: list[dict[str, Any]], d: dt.date) -> bool:
    months = gen.MONTHS
    return any(
        e.get("years") == [str(d.year)]
        and e.get("months") == [months[d.month - 1]]
        and e.get("days_of_month") == [str(d.day)]
        for e in entries
    )


def test_committed_intervals_match_the_generator() -> None:
    meta = COMMITTED["generated"]
    fresh = gen.build(meta["exchange"], meta["start_year"], meta["years"])
    assert fresh == COMMITTED, "exchange_closed.yml is stale: run generate_time_intervals.py"


def test_intervals_cover_next_year() -> None:
    meta = COMMITTED["generated"]
    last = meta["start_year"] + meta["years"] - 1
    assert last >= dt.date.today().year + 1, "regenerate exchange_closed.yml for the years ahead"


@pytest.mark.parametrize(
    "day",
    [dt.date(2026, 11, 26), dt.date(2027, 7, 5), dt.date(2027, 12, 24), dt.date(2028, 4, 14)],
)
def test_known_holidays_are_closed(day: dt.date) -> None:
    assert _has_day(_intervals("exchange-closed"), day)


def test_regular_sessions_are_not_closed_and_weekends_are() -> None:
    closed = _intervals("exchange-closed")
    assert not _has_day(closed, dt.date(2027, 11, 24))  # the Wednesday before Thanksgiving
    assert {"weekdays": ["saturday", "sunday"], "location": "America/New_York"} in closed
    assert all(e["location"] == "America/New_York" for e in closed)


def test_half_days_are_muted_from_the_early_close() -> None:
    early = _intervals("exchange-early-close")
    day = dt.date(2026, 11, 27)  # the day after Thanksgiving: 13:00 close
    match = [e for e in early if _has_day([e], day)]
    assert match and match[0]["times"] == [{"start_time": "13:00", "end_time": "24:00"}]


def test_render_only_filled_channels(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("123:secret\n")
    env = {
        "TRADEROPS_ALERTS_TELEGRAM_BOT_TOKEN_FILE": str(token),
        "TRADEROPS_ALERTS_TELEGRAM_CHAT_ID": "-1001",
        "TRADEROPS_ALERTS_WEBHOOK_URL": "http://127.0.0.1:9/hook",
        "TRADEROPS_ALERTS_RUNBOOK_BASE_URL": "https://ops.example/",
    }
    cfg = render.render(env, tmp_path / "out")
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o600
    doc = yaml.safe_load(cfg.read_text())
    page = next(r for r in doc["receivers"] if r["name"] == "page")
    assert set(page) == {"name", "telegram_configs", "webhook_configs"}
    assert page["telegram_configs"][0]["bot_token"] == "123:secret"
    assert page["telegram_configs"][0]["chat_id"] == -1001
    tmpl = (tmp_path / "out" / "traderops.tmpl").read_text()
    assert "Runbook: https://ops.example/{{ .Annotations.runbook }}" in tmpl
    assert {t["name"] for t in doc["time_intervals"]} == set(render.SESSION_MUTES)


@pytest.mark.parametrize(
    "env",
    [
        {"TRADEROPS_ALERTS_TELEGRAM_BOT_TOKEN": "123:x"},
        {"TRADEROPS_ALERTS_TELEGRAM_BOT_TOKEN": "123:x", "TRADEROPS_ALERTS_TELEGRAM_CHAT_ID": "me"},
        {"TRADEROPS_ALERTS_EMAIL_TO": "a@example.invalid"},
    ],
)
def test_half_filled_channel_is_an_error(env: dict[str, str]) -> None:
    with pytest.raises(render.ConfigError):
        render.build(env)


def test_critical_repeats_and_session_alerts_are_muted() -> None:
    route = render.build({})["route"]
    critical = next(r for r in route["routes"] if r["receiver"] == "page")
    assert critical["group_wait"] == "10s" and critical["repeat_interval"] == "15m"
    for child in route["routes"]:
        assert child["routes"][0]["mute_time_intervals"] == render.SESSION_MUTES
