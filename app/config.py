"""Settings for every service, from (highest first): environment, ``NAME_FILE``
variables, ``/etc/trader-ops/trader-ops.env`` and systemd credentials.

Secrets are ``SecretStr`` so they never reach a log line or ``config show``.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    InitSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
)

ENV_PREFIX = "TRADEROPS_"
DEFAULT_ENV_FILE = Path("/etc/trader-ops/trader-ops.env")

DEFAULT_SYMBOLS = [
    "AAPL", "MSFT", "GOOGL", "NVDA", "AMD", "TSLA", "SPY", "QQQ", "IWM", "DIA", "VTI",
]  # fmt: skip


class ConfigError(Exception):
    """Raised with one line per bad setting, named as the user sets it."""


class FileVariablesSource(PydanticBaseSettingsSource):
    """``TRADEROPS_X_FILE=/path`` reads the value of ``TRADEROPS_X`` from that file."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        path = os.environ.get(f"{ENV_PREFIX}{field_name.upper()}_FILE")
        if not path:
            return None, field_name, False
        try:
            return Path(path).read_text().strip(), field_name, False
        except OSError as exc:
            raise ConfigError(
                f"{ENV_PREFIX}{field_name.upper()}_FILE: cannot read {path}: {exc.strerror}"
            ) from None

    def __call__(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for name, field in self.settings_cls.model_fields.items():
            value, key, _ = self.get_field_value(field, name)
            if value is not None:
                found[key] = value
        return found


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=DEFAULT_ENV_FILE,
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
    )

    # -- HTTP ---------------------------------------------------------------
    http_host: str = "127.0.0.1"
    http_port: int = Field(8000, ge=1, le=65535)
    # -- state --------------------------------------------------------------
    redis_url: str = "redis://127.0.0.1:6379/0"
    data_dir: Path = Path.home() / ".local" / "share" / "trader-ops"
    backtest_dir: Path | None = Field(
        None,
        description="where `trader-ops backtest` writes runs and the console lists them "
        "(default: <data_dir>/backtests)",
    )
    # -- market data ----------------------------------------------------------
    feed: Literal["simulated", "tradier"] = "simulated"
    symbols: Annotated[list[str], NoDecode] = Field(default_factory=lambda: list(DEFAULT_SYMBOLS))
    sim_seed: int = 42
    sim_quote_rate: float = Field(2.0, gt=0, le=10_000, description="quotes/s per symbol")
    quote_ttl_seconds: float = Field(1.0, gt=0)
    history_ttl_seconds: int = Field(300, gt=0)
    max_history_bars: int = Field(20_000, gt=0)
    # -- WebSocket stream ---------------------------------------------------
    ws_heartbeat_seconds: float = Field(15.0, gt=0)
    ws_send_timeout_seconds: float = Field(5.0, gt=0)
    ws_max_symbols: int = Field(200, gt=0)
    ws_compression: bool = Field(
        False,
        description="permessage-deflate on /stream: smaller frames for slow links, ~17 us of CPU per frame per client",
    )
    # -- execution ----------------------------------------------------------
    broker: str = Field("paper", description="a registered broker: paper, tradier, ...")
    market_hours: Literal["exchange", "always"] | None = None
    risk_config: Path | None = None
    webhook_passphrase: SecretStr | None = None
    webhook_allow_ips: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="source allow-list; 'tradingview' = its 4 addresses"
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    webhook_rate_per_source: float = Field(50.0, gt=0, description="alerts/s per source address")
    webhook_burst_per_source: int = Field(200, gt=0)
    webhook_max_age_seconds: float | None = Field(
        None,
        gt=0,
        description="refuse alerts whose time is older (default: TRADEROPS_ALERT_TTL_SECONDS)",
    )
    alert_ttl_seconds: int = Field(7 * 86_400, gt=0, description="how long alert ids stay claimed")
    alert_repeat_seconds: int = Field(
        10,
        gt=0,
        le=3600,
        description="an alert without alert_id is a repeat only if the same body came "
        "within this many seconds",
    )
    paper_cash: float = Field(100_000.0, gt=0)
    paper_slippage_bps: float = Field(1.0, ge=0)
    paper_commission_per_share: float = Field(0.0, ge=0)
    paper_min_commission: float = Field(0.0, ge=0)
    paper_commission_per_contract: float = Field(0.0, ge=0)  # options, per contract per fill
    paper_partial_fill_shares: int | None = Field(None, gt=0)
    broker_timeout_seconds: float = Field(10.0, gt=0)
    accounts: Path | None = Field(
        None, description="accounts and routes (YAML); unset: one account, 'default'"
    )
    execution_in_datahub: bool = Field(
        True, description="the datahub also runs account engines (off: `trader-ops execution`)"
    )
    intake_wait_seconds: float = Field(
        1.0, gt=0, le=2.5, description="webhook waits this long for decisions, then 202 queued"
    )
    account_lease_seconds: float = Field(
        5.0,
        ge=1,
        le=60,
        description="an account's engine lease: a dead holder's is taken after this",
    )
    webhook_hmac_key: SecretStr | None = None
    admin_api_key: SecretStr | None = None
    # -- Tradier ------------------------------------------------------------
    tradier_token: SecretStr | None = None
    tradier_account_id: str | None = None
    tradier_base_url: str = "https://api.tradier.com/v1"
    tradier_stream_url: str = "wss://ws.tradier.com/v1/markets/events"
    tradier_timeout_seconds: float = Field(5.0, gt=0)
    # -- TradeNote ----------------------------------------------------------
    tradenote_url: str | None = None
    tradenote_app_id: str | None = None
    tradenote_master_key: SecretStr | None = None
    tradenote_username: str | None = None
    tradenote_timezone: str = Field(
        "America/New_York", description="the TradeNote user's time zone (dateUnix midnight)"
    )
    tradenote_timeout_seconds: float = Field(10.0, gt=0)
    journal_calendar: str = Field(
        "XNYS",
        description="exchange calendar whose session dates are the journal's and "
        "/api/v1/analytics' trading days (app/sessions.py)",
    )
    journal_max_attempts: int = Field(
        5, ge=1, description="rejections of one fill before it goes to the dead-letter stream"
    )
    journal_batch_size: int = Field(500, ge=1, le=10_000)
    journal_backoff_max_seconds: float = Field(30.0, gt=0)
    journal_port: int = Field(8002, ge=1, le=65535, description="journal /health and /metrics")
    # -- trade notifications (app/notify) ------------------------------------
    notify_urls: SecretStr | None = Field(
        None,
        description="apprise URLs (tgram://, discord://, mailtos://, json://...), space separated",
    )
    notify_fills: bool = Field(True, description="notify every fill")
    notify_denials: bool = Field(True, description="notify risk denials (coalesced)")
    notify_kill_switch: bool = Field(True, description="notify kill-switch changes")
    notify_breaker: bool = Field(True, description="notify circuit-breaker trips and closes")
    notify_unresolved: bool = Field(True, description="notify executions left unresolved")
    notify_coalesce_seconds: float = Field(
        2.0, gt=0, le=300, description="events in this window go out as one message per kind"
    )
    notify_max_attempts: int = Field(
        30, ge=1, description="delivery attempts of one message before it is dead-lettered"
    )
    notify_backoff_max_seconds: float = Field(60.0, gt=0)
    notify_port: int = Field(8003, ge=1, le=65535, description="notifier /metrics")
    # -- kairos -------------------------------------------------------------
    kairos_jobs: Path = Path("deployment/kairos/jobs")
    kairos_port: int = Field(8001, ge=1, le=65535, description="kairos /health and /metrics")
    datahub_url: str | None = Field(None, description="where kairos posts alerts")
    # -- logs ---------------------------------------------------------------
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    # -- exposure (issue 15) --------------------------------------------------
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Host header allow-list; empty = loopback names when bound to loopback, else any",
    )
    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="extra Origins allowed to open /stream"
    )
    max_symbols_per_request: int = Field(
        200, gt=0, le=10_000, description="symbols in one quotes request"
    )
    history_cache_mb: int = Field(
        64, gt=0, description="bytes of cached history bodies in Redis; oldest evicted first"
    )
    history_busy_seconds: float = Field(
        2.0, gt=0, description="wait for a history worker before answering 503"
    )
    scheduler_addresses: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.1", "::1"],
        description="where kairos posts from: its signed alerts pass the webhook allow-list",
    )
    api_docs: bool = Field(
        False, description="serve /docs (Swagger UI, local assets: trader-ops[docs])"
    )
    metrics_token: SecretStr | None = Field(
        None, description="when set, /metrics needs Authorization: Bearer <token>"
    )
    # -- slow and greedy HTTP clients (issue 21) -------------------------------
    http_header_timeout_seconds: float = Field(
        10.0, gt=0, le=300, description="a request's line and headers must arrive within this"
    )
    http_body_timeout_seconds: float = Field(
        10.0, gt=0, le=300, description="a request's body must arrive within this of its headers"
    )
    http_max_connections: int = Field(
        1000, ge=1, description="open HTTP connections at once; beyond, refused with 503"
    )
    http_max_connections_per_client: int = Field(
        128,
        ge=1,
        description="open connections per client address (not TRADEROPS_TRUSTED_PROXIES); beyond, 429",
    )
    admin_max_body_bytes: int = Field(
        8192, ge=256, le=1_048_576, description="largest body of an /api/v1 request (413 beyond)"
    )

    @field_validator("symbols", mode="before")
    @classmethod
    def _split_symbols(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [s for s in value.replace(" ", ",").split(",") if s]
        if isinstance(value, list):
            return [str(s).strip().upper() for s in value]
        return value

    @field_validator(
        "webhook_allow_ips",
        "trusted_proxies",
        "allowed_hosts",
        "allowed_origins",
        "scheduler_addresses",
        mode="before",
    )
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [s for s in value.replace(" ", ",").split(",") if s]
        return value

    @field_validator("webhook_allow_ips", "trusted_proxies", "scheduler_addresses")
    @classmethod
    def _networks(cls, value: list[str], info: ValidationInfo) -> list[str]:
        """Addresses or CIDR networks (and ``tradingview`` for the allow-list), checked at start."""
        keyword = "tradingview" if info.field_name == "webhook_allow_ips" else None
        for entry in value:
            if entry == keyword:
                continue
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                extra = " or 'tradingview'" if keyword else ""
                raise ValueError(
                    f"{entry[:60]!r} is not an IP address or CIDR network{extra}"
                ) from None
        return value

    @field_validator("broker")
    @classmethod
    def _registered_broker(cls, value: str) -> str:
        from app.brokers import registry  # (names only: no broker module is imported)

        return registry.check_name(value)

    @field_validator("metrics_token", "backtest_dir", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        """``TRADEROPS_METRICS_TOKEN=`` (compose's default) means no token (and an empty
        ``TRADEROPS_BACKTEST_DIR`` the default directory, not the current one)."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check_mode(self) -> Settings:
        users = [
            f"TRADEROPS_{k.upper()}=tradier"
            for k in ("feed", "broker")
            if getattr(self, k) == "tradier"
        ]
        if users and not self.tradier_token:
            raise ValueError(f"TRADEROPS_TRADIER_TOKEN is required when {' and '.join(users)}")
        if self.broker == "tradier" and not self.tradier_account_id:
            raise ValueError(
                "TRADEROPS_TRADIER_ACCOUNT_ID is required when TRADEROPS_BROKER=tradier"
            )
        if not self.symbols:
            raise ValueError("TRADEROPS_SYMBOLS must name at least one symbol")
        if (self.webhook_max_age_seconds or 0) > self.alert_ttl_seconds:
            raise ValueError(
                "TRADEROPS_WEBHOOK_MAX_AGE_SECONDS must not exceed TRADEROPS_ALERT_TTL_SECONDS: "
                "an alert replayed after its id is forgotten would run again"
            )
        return self

    @property
    def effective_market_hours(self) -> Literal["exchange", "always"]:
        """``always`` with the simulated feed (try it at any hour), else the exchange calendar."""
        if self.market_hours:
            return self.market_hours
        return "always" if self.feed == "simulated" else "exchange"

    @property
    def effective_backtest_dir(self) -> Path:
        """``backtest_dir``, or ``<data_dir>/backtests`` when unset."""
        return self.backtest_dir or self.data_dir / "backtests"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return tuple(
            named_sources(settings_cls, init_settings, env_settings, dotenv_settings).values()
        )


def _credentials_source(settings_cls: type[BaseSettings]) -> PydanticBaseSettingsSource | None:
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory or not Path(directory).is_dir():
        return None
    return SecretsSettingsSource(settings_cls, secrets_dir=directory)


def named_sources(
    settings_cls: type[BaseSettings],
    init_settings: PydanticBaseSettingsSource | None = None,
    env_settings: PydanticBaseSettingsSource | None = None,
    dotenv_settings: PydanticBaseSettingsSource | None = None,
) -> dict[str, PydanticBaseSettingsSource]:
    """The sources in priority order, named for ``config show``."""
    sources: dict[str, PydanticBaseSettingsSource] = {
        "arguments": init_settings or InitSettingsSource(settings_cls, init_kwargs={}),
        "environment": env_settings or EnvSettingsSource(settings_cls),
        "*_FILE": FileVariablesSource(settings_cls),
        "env file": dotenv_settings or DotEnvSettingsSource(settings_cls),
    }
    credentials = _credentials_source(settings_cls)
    if credentials is not None:
        sources["credentials"] = credentials
    return sources


def _format_errors(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        loc = [str(p) for p in error["loc"]]
        name = f"{ENV_PREFIX}{loc[0].upper()}" if loc else "settings"
        msg = str(error["msg"]).removeprefix("Value error, ")
        lines.append(msg if not loc else f"{name}: {msg}")
    return "; ".join(lines)


def load_settings(**overrides: Any) -> Settings:
    """Build settings, turning validation errors into a one-line ConfigError."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc)) from None


_SECRET_QUERY_KEYS = ("pass", "token", "secret", "key", "auth", "sig")
MASK = "********"


def redact_url(url: str) -> str:
    """``url`` with its userinfo and secret-looking query values replaced by ``***``.

    A password in a URL (``redis://:pw@host``, ``https://user:pw@tradenote``) is as secret
    as a ``SecretStr``; the host, port and path stay visible so the user can check where
    the setting points. Text that is not a URL comes back unchanged."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    secret = [any(w in k.lower() for w in _SECRET_QUERY_KEYS) for k, _ in pairs]
    query = parts.query
    if any(secret):
        masked = [(k, "***" if hide else v) for (k, v), hide in zip(pairs, secret, strict=True)]
        query = urlencode(masked, safe="*")
    # by hand, not urlunsplit: that drops the "//" of an empty host (unix:///path)
    return (
        f"{parts.scheme}://{netloc}{parts.path}"
        + (f"?{query}" if query else "")
        + (f"#{parts.fragment}" if parts.fragment else "")
    )


def redact_notify_urls(urls: str) -> str:
    """Only the scheme of each apprise URL: they carry tokens in the path too
    (``tgram://BOT_TOKEN/CHAT_ID``), so nothing after ``://`` is safe to show."""
    return " ".join(
        f"{u.split('://', 1)[0]}://***" if "://" in u else "***"
        for u in urls.replace(",", " ").split()
    )


def _shown(name: str, value: object) -> str:
    if isinstance(value, SecretStr):
        if name == "notify_urls":
            return redact_notify_urls(value.get_secret_value()) or MASK
        return MASK
    if value is None:
        return "(unset)"
    if isinstance(value, list):
        return ",".join(redact_url(str(v)) for v in value)
    return redact_url(str(value))


def _otel_rows() -> list[tuple[str, str, str]]:
    """The OpenTelemetry exporter variables that are set: tracing reads them itself, and
    an endpoint may carry a password and the headers an API key."""
    rows = []
    for key in sorted(os.environ):
        if not key.startswith("OTEL_"):
            continue
        value = os.environ[key]
        shown = MASK if "HEADERS" in key else redact_url(value)
        rows.append((key, shown, "environment"))
    return rows


def describe(
    settings: Settings, sources: dict[str, str] | None = None
) -> list[tuple[str, str, str]]:
    """(variable, redacted value, source) for every setting, for ``config show``.

    ``sources`` names where a caller-supplied value came from (the Redis URL a running
    ``trader-ops run`` recorded, say), which the configuration sources cannot know."""
    provided: dict[str, str] = {}
    for label, source in reversed(named_sources(Settings).items()):
        try:
            values = source()
        except (ConfigError, OSError, ValueError):
            continue
        for key in values:
            provided[key.lower()] = label
    provided.update(sources or {})
    rows = [
        (
            f"{ENV_PREFIX}{name.upper()}",
            _shown(name, getattr(settings, name)),
            provided.get(name, "default"),
        )
        for name in Settings.model_fields
    ]
    return rows + _otel_rows()
