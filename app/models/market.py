"""Market data models: symbols, quotes, bars, resolutions."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

SYMBOL_RE = re.compile(r"^[A-Z][A-Z0-9.\-/]{0,20}$")


def normalize_symbol(raw: str) -> str:
    """Upper-case a ticker and drop an exchange prefix (``NASDAQ:AAPL`` -> ``AAPL``)."""
    symbol = raw.strip().upper()
    if ":" in symbol:
        symbol = symbol.rsplit(":", 1)[1]
    return symbol


def is_valid_symbol(symbol: str) -> bool:
    return bool(SYMBOL_RE.match(symbol))


class Resolution(StrEnum):
    """UDF resolutions. Intraday values are minutes; D/W/M are calendar periods."""

    M1 = "1"
    M5 = "5"
    M15 = "15"
    M30 = "30"
    H1 = "60"
    H4 = "240"
    D1 = "1D"
    W1 = "1W"
    MN1 = "1M"

    @classmethod
    def parse(cls, raw: str) -> Resolution:
        """Accept the spellings TradingView sends (``D``, ``1D``, ``W``, ``M``...)."""
        value = raw.strip().upper()
        aliases = {"D": "1D", "W": "1W", "M": "1M", "1H": "60", "4H": "240"}
        value = aliases.get(value, value)
        try:
            return cls(value)
        except ValueError:
            raise ValueError(
                f"unsupported resolution {raw!r}; use one of " + ", ".join(r.value for r in cls)
            ) from None

    @property
    def intraday(self) -> bool:
        return self.value.isdigit()

    @property
    def seconds(self) -> int:
        """Nominal bar length (months count as 31 days; only used for range guards)."""
        if self.intraday:
            return int(self.value) * 60
        return {"1D": 86_400, "1W": 7 * 86_400, "1M": 31 * 86_400}[self.value]

    def bar_start(self, ts: int) -> int:
        """Start (Unix seconds, UTC) of the bar that contains ``ts``."""
        if self.intraday:
            step = self.seconds
            return ts - ts % step
        day = ts - ts % 86_400
        if self is Resolution.D1:
            return day
        dt = datetime.fromtimestamp(day, tz=UTC)
        if self is Resolution.W1:
            return int((dt - timedelta(days=dt.weekday())).timestamp())
        return int(dt.replace(day=1).timestamp())

    def next_bar_start(self, bar_start: int) -> int:
        if self.intraday or self is Resolution.D1 or self is Resolution.W1:
            return bar_start + self.seconds
        dt = datetime.fromtimestamp(bar_start, tz=UTC)
        year, month = (dt.year + 1, 1) if dt.month == 12 else (dt.year, dt.month + 1)
        return int(dt.replace(year=year, month=month, day=1).timestamp())


SUPPORTED_RESOLUTIONS = [r.value for r in Resolution]


class SymbolInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    symbol: str
    description: str
    exchange: str = "NASDAQ"
    type: str = "stock"
    sector: str = ""
    timezone: str = "America/New_York"
    session: str = "0930-1600"
    pricescale: int = 100
    minmov: int = 1
    currency: str = "USD"


class Quote(BaseModel):
    """Top of book plus session statistics, as served to clients and cached in Redis."""

    symbol: str
    time: float = Field(description="Unix seconds of the last update")
    last: float
    bid: float
    ask: float
    bid_size: int = 0
    ask_size: int = 0
    open: float | None = None
    high: float | None = None
    low: float | None = None
    prev_close: float | None = None
    volume: int = 0
    change: float = 0.0
    change_pct: float = 0.0

    @property
    def mid(self) -> float:
        return (self.bid + self.ask) / 2


class Bar(BaseModel):
    time: int = Field(description="bar start, Unix seconds UTC")
    open: float
    high: float
    low: float
    close: float
    volume: float


class History(BaseModel):
    """Bars for one request; ``next_time`` is the latest bar before the range when empty."""

    bars: list[Bar]
    next_time: int | None = None

    def udf_columns(self) -> dict[str, object]:
        """UDF's columnar form: equal-length arrays, ascending time."""
        if not self.bars:
            body: dict[str, object] = {"s": "no_data"}
            if self.next_time is not None:
                body["nextTime"] = self.next_time
            return body
        bars = self.bars
        return {
            "s": "ok",
            "t": [b.time for b in bars],
            "o": [b.open for b in bars],
            "h": [b.high for b in bars],
            "l": [b.low for b in bars],
            "c": [b.close for b in bars],
            "v": [b.volume for b in bars],
        }
