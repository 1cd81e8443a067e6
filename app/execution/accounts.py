"""Trading accounts and alert routing (``TRADEROPS_ACCOUNTS``, YAML).

```yaml
accounts:
  - id: paper
    broker: paper
    starting_cash: 50000
  - id: live
    broker: tradier
    risk_config: risk-live.yaml          # relative to this file
    tradier: {token_file: /etc/trader-ops/tradier-live.token, account_id: VA1234}
routes:                                   # first match wins; "*" is the default
  - strategy: momentum
    accounts: [{account: paper}, {account: live, multiplier: 0.5}]
  - strategy: "*"
    accounts: [{account: paper}]
```

Without the file there is one account, ``default``, built from the plain settings, and
every alert routes to it: exactly the single-account behaviour.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from app.config import Settings
from app.execution.config import read_yaml_mapping
from app.execution.sizing import SizingRule

DEFAULT_ACCOUNT = "default"
ACCOUNT_ID = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,39}$"
ALL_ACCOUNTS = "all"  # ``?account=all`` addresses every account, so no account may be named so


class AccountsConfigError(ValueError):
    """The accounts file is missing, malformed or inconsistent (one line, names the field)."""


class TradierCredentials(BaseModel):
    """Each secret given as a file (0600, e.g. a systemd credential) or an env var name."""

    model_config = ConfigDict(extra="forbid")

    token_file: Path | None = None
    token_env: str | None = None
    account_id: str | None = None
    account_id_file: Path | None = None
    base_url: str | None = None
    stream_url: str | None = None

    @model_validator(mode="after")
    def _one_of_each(self) -> TradierCredentials:
        if (self.token_file is None) == (self.token_env is None):
            raise ValueError("give exactly one of token_file, token_env")
        if (self.account_id is None) == (self.account_id_file is None):
            raise ValueError("give exactly one of account_id, account_id_file")
        return self

    def token(self) -> SecretStr:
        if self.token_file is not None:
            return SecretStr(_read_secret(self.token_file))
        assert self.token_env is not None
        value = os.environ.get(self.token_env)
        creds = os.environ.get("CREDENTIALS_DIRECTORY")
        if not value and creds and (Path(creds) / self.token_env).is_file():
            value = _read_secret(Path(creds) / self.token_env)  # a systemd credential
        if not value:
            raise AccountsConfigError(
                f"{self.token_env} is not set (environment or systemd credential)"
            )
        return SecretStr(value)

    def resolved_account_id(self) -> str:
        if self.account_id is not None:
            return self.account_id
        assert self.account_id_file is not None
        return _read_secret(self.account_id_file)


class AccountConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=ACCOUNT_ID)
    broker: Literal["paper", "tradier"] = "paper"
    risk_config: Path | None = None  # default: TRADEROPS_RISK_CONFIG
    starting_cash: float | None = Field(None, gt=0)  # paper; default TRADEROPS_PAPER_CASH
    tradier: TradierCredentials | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> AccountConfig:
        """The ``default`` account the plain settings describe (no accounts file). Without
        a ``tradier:`` block a Tradier account uses ``TRADEROPS_TRADIER_*``, which
        ``Settings`` requires with ``TRADEROPS_BROKER=tradier``; in the accounts file every
        Tradier account names its own (``load_accounts``)."""
        return cls(id=DEFAULT_ACCOUNT, broker=settings.broker)

    @field_validator("id")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value.lower() == ALL_ACCOUNTS:
            raise ValueError(f"{value!r} is reserved (?account=all means every account)")
        return value


class RouteTarget(BaseModel):
    """One account an alert goes to: its quantity times ``multiplier`` (rounded down,
    at least 1 share), or sized by ``sizing`` instead of the account's own rules."""

    model_config = ConfigDict(extra="forbid")

    account: str
    multiplier: float = Field(1.0, gt=0, le=1000)
    sizing: SizingRule | None = None


class Route(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strategy: str = "*"
    accounts: list[RouteTarget] = Field(min_length=1)


class AccountsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    accounts: list[AccountConfig] = Field(min_length=1)
    routes: list[Route] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> AccountsConfig:
        ids = [a.id for a in self.accounts]
        if dupes := sorted({i for i in ids if ids.count(i) > 1}):
            raise ValueError(f"account ids must be unique: {', '.join(dupes)}")
        for route in self.routes:
            for target in route.accounts:
                if target.account not in ids:
                    raise ValueError(
                        f"route {route.strategy!r} names unknown account {target.account!r}"
                    )
        if not self.routes:  # every alert to the first account
            self.routes = [Route(strategy="*", accounts=[RouteTarget(account=ids[0])])]
        return self

    @property
    def ids(self) -> list[str]:
        return [a.id for a in self.accounts]

    @property
    def default(self) -> str:
        """The account admin routes use without ``?account=``: ``default`` if declared,
        else the first one."""
        return DEFAULT_ACCOUNT if DEFAULT_ACCOUNT in self.ids else self.ids[0]

    def get(self, account: str) -> AccountConfig | None:
        return next((a for a in self.accounts if a.id == account), None)

    def route(self, strategy: str) -> list[RouteTarget]:
        """The accounts an alert of ``strategy`` goes to (first match; ``*`` matches all)."""
        for route in self.routes:
            if route.strategy == strategy or route.strategy == "*":
                return route.accounts
        return []


def scaled_quantity(quantity: float | None, multiplier: float) -> float | None:
    """An alert's quantity for one routed account (whole shares, at least one)."""
    if quantity is None or multiplier == 1.0:
        return quantity
    return float(max(1, math.floor(quantity * multiplier + 1e-9)))


def load_accounts(settings: Settings) -> AccountsConfig:
    """The declared accounts, or the one ``default`` account the plain settings describe."""
    path = settings.accounts
    if path is None:
        return AccountsConfig(
            accounts=[AccountConfig.from_settings(settings)],
            routes=[Route(strategy="*", accounts=[RouteTarget(account=DEFAULT_ACCOUNT)])],
        )
    data = read_yaml_mapping(path, AccountsConfigError)
    try:
        config = AccountsConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "top level"
        raise AccountsConfigError(f"{path}: {where}: {first['msg']}") from None
    for index, account in enumerate(config.accounts):
        if account.broker == "tradier" and account.tradier is None:
            raise AccountsConfigError(
                f"{path}: accounts.{index}.tradier: a tradier account needs "
                "tradier: {token_file|token_env, account_id|account_id_file}"
            )
    base = path.parent
    for account in config.accounts:  # relative paths are relative to the file
        if account.risk_config is not None and not account.risk_config.is_absolute():
            account.risk_config = base / account.risk_config
        creds = account.tradier
        if creds is not None:
            for name in ("token_file", "account_id_file"):
                value = getattr(creds, name)
                if value is not None and not value.is_absolute():
                    setattr(creds, name, base / value)
    return config


def check_accounts(config: AccountsConfig, settings: Settings) -> None:
    """Everything start-up needs of each account, read now rather than by an engine that
    would restart every few seconds: its risk file parses, its credentials can be read.
    Raises ``AccountsConfigError`` naming the account and field."""
    from app.execution.config import load_execution_config
    from app.risk.limits import RiskConfigError

    for index, account in enumerate(config.accounts):
        where = f"accounts.{index} ({account.id})"
        risk = account.risk_config or settings.risk_config
        try:
            load_execution_config(risk)
        except RiskConfigError as exc:
            field = "risk_config" if account.risk_config else "TRADEROPS_RISK_CONFIG"
            raise AccountsConfigError(f"{where}: {field}: {exc}") from None
        creds = account.tradier
        if creds is None:
            continue
        try:
            creds.token()
        except AccountsConfigError as exc:
            field = "token_file" if creds.token_file is not None else "token_env"
            raise AccountsConfigError(f"{where}: tradier.{field}: {exc}") from None
        try:
            creds.resolved_account_id()
        except AccountsConfigError as exc:
            raise AccountsConfigError(f"{where}: tradier.account_id_file: {exc}") from None


def _read_secret(path: Path) -> str:
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise AccountsConfigError(f"{path}: cannot read: {exc.strerror}") from None
    if not value:
        raise AccountsConfigError(f"{path}: empty")
    return value


def valid_account_id(value: str) -> bool:
    return re.match(ACCOUNT_ID, value) is not None
