"""A new broker is one module plus one ``register`` call: the settings, the accounts file
(its own credentials block, relative paths, start-up checks) and the wiring pick it up."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from app.brokers import registry
from app.brokers.credentials import CredentialsError, read_secret_file, relative
from app.config import ConfigError, Settings, load_settings
from app.datahub.wiring import make_broker
from app.execution.accounts import AccountsConfigError, check_accounts, load_accounts


class EchoCredentials(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key_file: Path

    def relative_to(self, base: Path) -> None:
        self.key_file = relative(self.key_file, base) or self.key_file

    def check(self) -> None:
        try:
            read_secret_file(self.key_file)
        except CredentialsError as exc:
            raise CredentialsError(f"key_file: {exc}") from None


class EchoBroker:
    name = "echo"
    keeps_book = False
    redelivers_fills = False

    def __init__(self, account: str, key: str) -> None:
        self.account, self.key = account, key


@pytest.fixture
def echo() -> Iterator[None]:
    def build(ctx: registry.BrokerContext) -> Any:
        assert isinstance(ctx.credentials, EchoCredentials)
        return EchoBroker(ctx.account_id, read_secret_file(ctx.credentials.key_file))

    registry.register(registry.BrokerSpec("echo", build, credentials=EchoCredentials))
    yield
    registry.unregister("echo")


def test_the_shipped_brokers_are_found_without_importing_them() -> None:
    assert {"paper", "tradier"} <= set(registry.names())
    assert registry.get("tradier").credentials is not None
    with pytest.raises(KeyError, match="unknown broker 'nope'"):
        registry.get("nope")


def test_settings_take_any_registered_broker_and_name_the_known_ones(echo: None) -> None:
    assert Settings(_env_file=None, broker="echo").broker == "echo"  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match=r"unknown broker 'nope' .*echo.*paper.*tradier"):
        load_settings(broker="nope")


def test_the_accounts_file_and_the_wiring_pick_a_new_broker_up(echo: None, tmp_path: Path) -> None:
    (tmp_path / "echo.key").write_text("k-123\n")
    path = tmp_path / "accounts.yaml"
    path.write_text("accounts:\n  - {id: e1, broker: echo, echo: {key_file: echo.key}}\n")
    settings = Settings(_env_file=None, accounts=path)  # type: ignore[call-arg]
    config = load_accounts(settings)
    check_accounts(config, settings)
    (account,) = config.accounts
    assert account.credentials.key_file == tmp_path / "echo.key"  # relative to the file
    broker = make_broker(settings, None, None, account)  # type: ignore[arg-type]
    assert isinstance(broker, EchoBroker) and (broker.account, broker.key) == ("e1", "k-123")
    (tmp_path / "echo.key").unlink()
    with pytest.raises(AccountsConfigError, match=r"accounts.0 \(e1\): echo.key_file: .*echo.key"):
        check_accounts(load_accounts(settings), settings)
    path.write_text("accounts:\n  - {id: e1, broker: echo}\n")
    with pytest.raises(
        AccountsConfigError,
        match=re.escape("accounts.0.echo: the echo broker needs echo: {key_file}"),
    ):
        load_accounts(settings)
