from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.config import ConfigError, Settings, describe, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    import os

    for key in list(os.environ):
        if key.startswith("TRADEROPS_") or key == "CREDENTIALS_DIRECTORY":
            monkeypatch.delenv(key)
    env_file = tmp_path / "trader-ops.env"
    monkeypatch.setitem(Settings.model_config, "env_file", env_file)
    return env_file


def test_sources_in_priority_order(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, clean_env: Path
) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "TRADEROPS_ADMIN_API_KEY").write_text("from-credentials")
    (creds / "TRADEROPS_WEBHOOK_PASSPHRASE").write_text("from-credentials")
    (creds / "TRADEROPS_WEBHOOK_HMAC_KEY").write_text("from-credentials")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    clean_env.write_text(
        "TRADEROPS_WEBHOOK_PASSPHRASE=from-env-file\nTRADEROPS_WEBHOOK_HMAC_KEY=from-env-file\n"
    )
    secret = tmp_path / "hmac"
    secret.write_text("from-file-var\n")
    monkeypatch.setenv("TRADEROPS_WEBHOOK_HMAC_KEY_FILE", str(secret))
    monkeypatch.setenv("TRADEROPS_HTTP_PORT", "9000")

    s = load_settings()
    assert s.http_port == 9000
    assert (
        s.webhook_hmac_key is not None and s.webhook_hmac_key.get_secret_value() == "from-file-var"
    )
    assert (
        s.webhook_passphrase is not None
        and s.webhook_passphrase.get_secret_value() == "from-env-file"
    )
    assert s.admin_api_key is not None and s.admin_api_key.get_secret_value() == "from-credentials"

    sources = {name: source for name, _, source in describe(s)}
    assert sources["TRADEROPS_HTTP_PORT"] == "environment"
    assert sources["TRADEROPS_WEBHOOK_HMAC_KEY"] == "*_FILE"
    assert sources["TRADEROPS_WEBHOOK_PASSPHRASE"] == "env file"
    assert sources["TRADEROPS_ADMIN_API_KEY"] == "credentials"
    assert sources["TRADEROPS_FEED"] == "default"


def test_environment_beats_file_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "p"
    secret.write_text("file")
    monkeypatch.setenv("TRADEROPS_WEBHOOK_PASSPHRASE_FILE", str(secret))
    monkeypatch.setenv("TRADEROPS_WEBHOOK_PASSPHRASE", "env")
    s = load_settings()
    assert s.webhook_passphrase is not None and s.webhook_passphrase.get_secret_value() == "env"


def test_unreadable_file_variable_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEROPS_ADMIN_API_KEY_FILE", "/nonexistent/key")
    with pytest.raises(
        ConfigError, match="TRADEROPS_ADMIN_API_KEY_FILE: cannot read /nonexistent/key"
    ):
        load_settings()


def test_tradier_feed_without_token_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEROPS_FEED", "tradier")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert str(err.value) == "TRADEROPS_TRADIER_TOKEN is required when TRADEROPS_FEED=tradier"


def test_invalid_values_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEROPS_HTTP_PORT", "eighty")
    monkeypatch.setenv("TRADEROPS_FEED", "bloomberg")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "TRADEROPS_HTTP_PORT:" in str(err.value) and "TRADEROPS_FEED:" in str(err.value)
    assert "\n" not in str(err.value)


def test_symbols_from_a_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEROPS_SYMBOLS", "aapl, msft,spy")
    assert load_settings().symbols == ["AAPL", "MSFT", "SPY"]


def test_market_hours_default_follows_the_feed(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().effective_market_hours == "always"
    monkeypatch.setenv("TRADEROPS_FEED", "tradier")
    monkeypatch.setenv("TRADEROPS_TRADIER_TOKEN", "t")
    assert load_settings().effective_market_hours == "exchange"


def test_config_show_redacts_secrets_and_names_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEROPS_ADMIN_API_KEY", "super-secret-admin-key")
    monkeypatch.setenv("TRADEROPS_TRADIER_TOKEN", "super-secret-token")
    result = CliRunner().invoke(cli, ["config", "show"])
    assert result.exit_code == 0, result.output
    assert "super-secret" not in result.output
    line = next(x for x in result.output.splitlines() if x.startswith("TRADEROPS_ADMIN_API_KEY"))
    assert "********" in line and "[environment]" in line


def test_config_show_redacts_every_url_password_and_token(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Issue 21 item 4: URLs carry passwords (redis, TradeNote, OTLP) and apprise URLs
    carry tokens in the path; `config show` printed the Redis one in clear."""
    canaries = {
        "TRADEROPS_REDIS_URL": (
            "redis://:redis-pw-CANARY1@cache.internal:6380/0",
            "cache.internal",
        ),
        "TRADEROPS_TRADENOTE_URL": (
            "https://journal:tn-pw-CANARY2@tradenote.example:8080",
            "tradenote.example",
        ),
        "TRADEROPS_DATAHUB_URL": ("http://hub.internal:8000/?token=dh-tok-CANARY3", "hub.internal"),
        "TRADEROPS_NOTIFY_URLS": (
            "tgram://123456:bot-CANARY4/-100987 json://u:j-CANARY5@h",
            "tgram://",
        ),
        "OTEL_EXPORTER_OTLP_ENDPOINT": ("https://otel:otlp-pw-CANARY6@collector:4318", "collector"),
        "OTEL_EXPORTER_OTLP_HEADERS": (
            "Authorization=Bearer%20hdr-CANARY7",
            "OTEL_EXPORTER_OTLP_HEADERS",
        ),
    }
    monkeypatch.setenv("TRADEROPS_DATA_DIR", str(tmp_path))
    for name, (value, _) in canaries.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(cli, ["config", "show"])
    assert result.exit_code == 0, result.output
    assert "CANARY" not in result.output, result.output
    rows = {line.split()[0]: line for line in result.output.splitlines() if line.strip()}
    for name, (_, visible) in canaries.items():
        assert visible in rows[name], rows[name]  # still shows where it points
        assert "[environment]" in rows[name], rows[name]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw@cache:6380/0", "redis://***@cache:6380/0"),
        ("rediss://user:pw@cache", "rediss://***@cache"),
        ("unix:///run/redis.sock?password=pw&db=1", "unix:///run/redis.sock?password=***&db=1"),
        ("http://hub:8000/x?api_key=pw&a=1", "http://hub:8000/x?api_key=***&a=1"),
        ("https://api.tradier.com/v1", "https://api.tradier.com/v1"),
        ("not a url", "not a url"),
    ],
)
def test_redact_url_hides_userinfo_and_secret_query_values(url: str, shown: str) -> None:
    from app.config import redact_url

    assert redact_url(url) == shown


def test_cli_reports_config_errors_without_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEROPS_BROKER", "tradier")
    result = CliRunner().invoke(cli, ["config", "show"])
    assert result.exit_code == 2
    assert (
        "config error: TRADEROPS_TRADIER_TOKEN is required when TRADEROPS_BROKER=tradier"
        in result.output
    )
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("env", "value"),
    [
        ("TRADEROPS_TRUSTED_PROXIES", "localhost"),
        ("TRADEROPS_WEBHOOK_ALLOW_IPS", "tradingveiw"),
        ("TRADEROPS_WEBHOOK_ALLOW_IPS", "10.0.0.0/8,nonsense"),
        ("TRADEROPS_SCHEDULER_ADDRESSES", "kairos"),
    ],
)
def test_a_bad_address_setting_is_a_one_line_start_up_error(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str
) -> None:
    """These passed start-up and then made every webhook answer 500 (issue 15)."""
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError) as exc:
        load_settings(_env_file=None)
    message = str(exc.value)
    assert env in message and "not an IP address or CIDR network" in message
    assert "\n" not in message


def test_good_address_settings_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEROPS_WEBHOOK_ALLOW_IPS", "tradingview,10.0.0.0/8,::1")
    monkeypatch.setenv("TRADEROPS_TRUSTED_PROXIES", "127.0.0.1,172.16.0.0/12")
    settings = load_settings(_env_file=None)
    assert settings.webhook_allow_ips == ["tradingview", "10.0.0.0/8", "::1"]


def test_the_freshness_window_cannot_outlive_the_idempotency_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRADEROPS_WEBHOOK_MAX_AGE_SECONDS", str(8 * 86_400))
    with pytest.raises(ConfigError, match="TRADEROPS_ALERT_TTL_SECONDS"):
        load_settings(_env_file=None)


def test_backtest_dir_defaults_to_the_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from datetime import date

    from app.backtest.cli import default_out

    monkeypatch.setenv("TRADEROPS_DATA_DIR", str(tmp_path))
    assert load_settings().effective_backtest_dir == tmp_path / "backtests"
    monkeypatch.setenv("TRADEROPS_BACKTEST_DIR", "")  # empty: the default, not the cwd
    assert load_settings().effective_backtest_dir == tmp_path / "backtests"
    monkeypatch.setenv("TRADEROPS_BACKTEST_DIR", str(tmp_path / "runs"))
    assert load_settings().effective_backtest_dir == tmp_path / "runs"
    out = default_out("momentum+meanrev", date(2026, 11, 2), date(2026, 11, 6))
    assert out == tmp_path / "runs" / "momentum+meanrev-2026-11-02-2026-11-06"
    # a replay's name comes from a file name: anything the console could not name is "_"
    out = default_out("replay-my alerts/ü", date(2026, 1, 2), date(2026, 1, 2))
    assert out.name == "replay-my_alerts__-2026-01-02-2026-01-02"
