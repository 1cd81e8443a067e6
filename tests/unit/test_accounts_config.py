"""The accounts file: what it routes where, and one clear line for what is wrong in it."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.brokers.credentials import CredentialsError
from app.config import Settings
from app.execution.accounts import AccountsConfigError, load_accounts, scaled_quantity


def settings(path: Path | None, **kw: object) -> Settings:
    return Settings(_env_file=None, accounts=path, **kw)  # type: ignore[call-arg]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "accounts.yaml"
    path.write_text(text)
    return path


def test_without_a_file_one_default_account_takes_every_alert() -> None:
    config = load_accounts(settings(None, broker="paper"))
    assert config.ids == ["default"] and config.default == "default"
    assert [t.account for t in config.route("anything")] == ["default"]


def test_routes_first_match_with_a_default_and_paths_relative_to_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "live.token").write_text("secret-token\n")
    path = write(
        tmp_path,
        """
accounts:
  - {id: paper, broker: paper, starting_cash: 5000, risk_config: risk-paper.yaml}
  - id: live
    broker: tradier
    tradier: {token_file: live.token, account_id: VA1}
routes:
  - {strategy: momentum, accounts: [{account: paper}, {account: live, multiplier: 0.5}]}
  - {strategy: "*", accounts: [{account: paper}]}
""",
    )
    config = load_accounts(settings(path))
    assert config.default == "paper"  # no account called default: the first one
    assert [(t.account, t.multiplier) for t in config.route("momentum")] == [
        ("paper", 1.0),
        ("live", 0.5),
    ]
    assert [t.account for t in config.route("other")] == ["paper"]
    paper, live = config.accounts
    assert paper.risk_config == tmp_path / "risk-paper.yaml"
    assert (
        live.credentials is not None
        and live.credentials.token().get_secret_value() == "secret-token"
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("accounts: []", "accounts: List should have at least 1 item"),
        ("accounts: [{id: a}, {id: a}]", "account ids must be unique: a"),
        ("accounts: [{id: a}]\nroutes: [{accounts: [{account: b}]}]", "unknown account 'b'"),
        (
            "accounts: [{id: t, broker: tradier}]",
            "accounts.0.tradier: the tradier broker needs tradier: {token_file",
        ),
        ("accounts: [{id: all}]", "accounts.0.id: Value error, 'all' is reserved"),
        ("accounts: [{id: a, colour: red}]", "accounts.0.colour: Extra inputs are not permitted"),
        ("accounts: [", "invalid YAML"),
    ],
)
def test_a_bad_file_is_one_line_naming_the_problem(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(AccountsConfigError) as err:
        load_accounts(settings(write(tmp_path, text)))
    assert problem in str(err.value) and "\n" not in str(err.value)


def test_a_multiplier_gives_whole_shares_and_never_zero() -> None:
    assert scaled_quantity(10, 0.5) == 5
    assert scaled_quantity(3, 0.5) == 1
    assert scaled_quantity(1, 0.1) == 1
    assert scaled_quantity(None, 2.0) is None  # sized by the account's rules instead


def test_a_token_named_by_env_is_read_from_systemd_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "TRADEROPS_TRADIER_TOKEN_LIVE").write_text("from-systemd\n")
    path = write(
        tmp_path,
        "accounts: [{id: live, broker: tradier, tradier: "
        "{token_env: TRADEROPS_TRADIER_TOKEN_LIVE, account_id: VA1}}]\n",
    )
    monkeypatch.delenv("TRADEROPS_TRADIER_TOKEN_LIVE", raising=False)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    (live,) = load_accounts(settings(path)).accounts
    assert (
        live.credentials is not None
        and live.credentials.token().get_secret_value() == "from-systemd"
    )
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    with pytest.raises(CredentialsError, match="TRADEROPS_TRADIER_TOKEN_LIVE is not set"):
        live.credentials.token()
