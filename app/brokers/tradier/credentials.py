"""A Tradier account's credentials (the accounts file's ``tradier:`` block) and the
broker built from them or from the plain ``TRADEROPS_TRADIER_*`` settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, SecretStr, model_validator

from app.brokers.credentials import (
    CredentialsError,
    read_secret_env,
    read_secret_file,
    relative,
)
from app.brokers.registry import BrokerContext
from app.brokers.tradier.broker import TradierBroker


class TradierCredentials(BaseModel):
    """A Tradier account's block in the accounts file: each secret as a file (0600, e.g.
    a systemd credential) or an environment variable name, never inline."""

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

    def relative_to(self, base: Path) -> None:
        self.token_file = relative(self.token_file, base)
        self.account_id_file = relative(self.account_id_file, base)

    def token(self) -> SecretStr:
        if self.token_file is not None:
            return SecretStr(read_secret_file(self.token_file))
        assert self.token_env is not None
        return SecretStr(read_secret_env(self.token_env))

    def resolved_account_id(self) -> str:
        if self.account_id is not None:
            return self.account_id
        assert self.account_id_file is not None
        return read_secret_file(self.account_id_file)

    def check(self) -> None:
        """Read both secrets now (start-up), naming the field that fails."""
        try:
            self.token()
        except CredentialsError as exc:
            field = "token_file" if self.token_file is not None else "token_env"
            raise CredentialsError(f"{field}: {exc}") from None
        try:
            self.resolved_account_id()
        except CredentialsError as exc:
            raise CredentialsError(f"account_id_file: {exc}") from None


def build(ctx: BrokerContext) -> TradierBroker:
    """The account's own credentials, or the plain ``TRADEROPS_TRADIER_*`` settings."""
    creds = ctx.credentials
    if not isinstance(creds, TradierCredentials):  # the default account
        return TradierBroker.from_settings(ctx.settings)
    return TradierBroker.from_settings(
        ctx.settings.model_copy(
            update={
                "tradier_token": creds.token(),
                "tradier_account_id": creds.resolved_account_id(),
                "tradier_base_url": creds.base_url or ctx.settings.tradier_base_url,
            }
        )
    )
