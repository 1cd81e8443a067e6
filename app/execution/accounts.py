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
import re
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from app.brokers.credentials import CredentialsError
from app.config import Settings
from app.execution.config import read_yaml_mapping
from app.execution.sizing import SizingRule

DEFAULT_ACCOUNT = "default"
ACCOUNT_ID = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,39}$"
ALL_ACCOUNTS = "all"  # ``?account=all`` addresses every account, so no account may be named so


class AccountsConfigError(ValueError):
    """The accounts file is missing, malformed or inconsistent (one line, names the field)."""


class AccountConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=ACCOUNT_ID)
    broker: str = "paper"  # any registered broker (app/brokers/registry.py)
    risk_config: Path | None = None  # default: TRADEROPS_RISK_CONFIG
    starting_cash: float | None = Field(None, gt=0)  # paper; default TRADEROPS_PAPER_CASH
    # the broker's own block (``tradier: {...}``), validated by the broker's credentials
    # model in ``load_accounts``; None: the plain settings (the ``default`` account)
    credentials: Any = Field(None, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _broker_block(cls, data: Any) -> Any:
        """The block named after the broker is its credentials (raw, checked later)."""
        if isinstance(data, dict):
            broker = data.get("broker", "paper")
            if isinstance(broker, str) and broker in data:
                data = dict(data)
                data["credentials"] = data.pop(broker)
        return data

    @field_validator("broker")
    @classmethod
    def _known(cls, value: str) -> str:
        from app.brokers import registry

        return registry.check_name(value)

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
    base = path.parent
    for index, account in enumerate(config.accounts):
        if account.risk_config is not None and not account.risk_config.is_absolute():
            account.risk_config = base / account.risk_config  # relative to the file
        account.credentials = _credentials(path, index, account)
        if account.credentials is not None:
            account.credentials.relative_to(base)
    return config


def _credentials(path: Path, index: int, account: AccountConfig) -> Any:
    """The account's credentials block, validated by its broker's model (or its absence,
    by whether the broker needs one)."""
    from app.brokers import registry

    spec = registry.get(account.broker)
    where = f"{path}: accounts.{index}.{account.broker}"
    raw = account.credentials
    if spec.credentials is None:
        if raw is not None:
            raise AccountsConfigError(f"{where}: the {account.broker} broker takes no credentials")
        return None
    if raw is None:
        fields = ", ".join(spec.credentials.model_fields)
        raise AccountsConfigError(
            f"{where}: the {account.broker} broker needs {account.broker}: {{{fields}}}"
        )
    try:
        return spec.credentials.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise AccountsConfigError(
            f"{where}{'.' + field if field else ''}: {first['msg']}"
        ) from None


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
        if account.credentials is None:
            continue
        try:
            account.credentials.check()
        except CredentialsError as exc:
            raise AccountsConfigError(f"{where}: {account.broker}.{exc}") from None


def valid_account_id(value: str) -> bool:
    return re.match(ACCOUNT_ID, value) is not None
