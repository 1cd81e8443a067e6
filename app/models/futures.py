"""Futures contract specs (the shipped ``futures.yaml``), dated symbols and continuous tickers.

Dated symbols are written the way Tradovate writes them: root, CME month code and the
last digit of the year (``ESZ6``). ``ESZ26``, ``ESZ2026`` and an exchange prefix
(``CME_MINI:ESZ2026``) parse to the same contract. A one-digit year is read as the year
ending in that digit nearest ahead of the reference date (at most 2 years back), so
``ESZ5`` is December 2025 in 2026 and December 2035 from 2028 on.

TradingView's continuous tickers (``ES1!`` front, ``ES2!`` next) map to the dated contract
that is front on a given day: a contract stops being front ``roll_days`` calendar days
before its last trading day (on the roll date itself the next one is front).
"""

from __future__ import annotations

import re
import warnings
from calendar import monthrange
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from decimal import Decimal
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

MONTH_CODES = "FGHJKMNQUVXZ"
#: Business days (NYSE sessions) are materialised for these years; outside, weekdays.
_BDAY_YEARS = (2005, 2045)

_DATED_RE = re.compile(r"^(?P<root>[A-Z0-9]+?)(?P<code>[FGHJKMNQUVXZ])(?P<year>\d{4}|\d{1,2})$")
_CONTINUOUS_RE = re.compile(r"^(?P<root>[A-Z0-9]+?)(?P<n>[1-9])!$")

LAST_TRADE_RULES = ("third_friday", "before_25th_prior_month", "third_last_business_day")


@cache
def _nyse_sessions() -> frozenset[date]:
    import exchange_calendars as xc

    start, end = _BDAY_YEARS
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cal = xc.get_calendar("XNYS", start=f"{start}-01-01", end=f"{end}-12-31")
    return frozenset(cal.sessions.date)


def is_business_day(day: date) -> bool:
    """An NYSE session day: CME's expiry rules count US business days (Good Friday and
    Juneteenth included), and its Globex calendar trades through some of those holidays."""
    if _BDAY_YEARS[0] <= day.year <= _BDAY_YEARS[1]:
        return day in _nyse_sessions()
    return day.weekday() < 5


def _previous_business_day(day: date, *, inclusive: bool) -> date:
    if not inclusive:
        day -= timedelta(days=1)
    while not is_business_day(day):
        day -= timedelta(days=1)
    return day


@dataclass(frozen=True, slots=True)
class FuturesSpec:
    """One product (root) of the table; see futures.yaml for what each field means."""

    root: str
    name: str
    exchange: str
    underlying: str
    point_value: Decimal
    tick_size: Decimal
    months: tuple[int, ...]
    last_trade: str
    roll_days: int
    calendar: str = "CMES"
    currency: str = "USD"
    continuous_months: tuple[int, ...] = ()
    last_trade_offset: int = 0
    initial_margin: Decimal | None = None
    maintenance_break: tuple[time, time, str] | None = None
    _expiries: dict[tuple[int, int], date] = field(default_factory=dict, compare=False, repr=False)

    @property
    def tick_value(self) -> Decimal:
        return self.tick_size * self.point_value

    def last_trade_date(self, year: int, month: int) -> date:
        """Last trading day of the ``year``/``month`` contract (memoised per spec)."""
        key = (year, month)
        hit = self._expiries.get(key)
        if hit is None:
            hit = self._expiries[key] = _last_trade(self, year, month)
        return hit

    def symbol(self, year: int, month: int) -> str:
        """The dated symbol, Tradovate style: ``ESZ6``."""
        return f"{self.root}{MONTH_CODES[month - 1]}{year % 10}"

    def cycle(self) -> tuple[int, ...]:
        return self.continuous_months or self.months

    def contract_on(self, on: date, nth: int = 1, roll_days: int | None = None) -> tuple[int, int]:
        """(year, month) of the ``nth`` contract (1 = front) a continuous ticker means on ``on``."""
        if nth < 1:
            raise ValueError(f"continuous contract number must be >= 1, not {nth}")
        roll = self.roll_days if roll_days is None else roll_days
        cycle = self.cycle()
        year, found = on.year - 1, 0
        while True:
            for month in cycle:
                if (year, month) < (on.year, on.month - 1):
                    continue
                if on < self.last_trade_date(year, month) - timedelta(days=roll):
                    found += 1
                    if found == nth:
                        return year, month
            year += 1


def _last_trade(spec: FuturesSpec, year: int, month: int) -> date:
    rule = spec.last_trade
    if rule == "third_friday":
        first = date(year, month, 1)
        friday = first + timedelta(days=(4 - first.weekday()) % 7 + 14)
        return _previous_business_day(friday, inclusive=True)
    if rule == "before_25th_prior_month":
        py, pm = (year - 1, 12) if month == 1 else (year, month - 1)
        day = date(py, pm, 25)
        steps = spec.last_trade_offset + (0 if is_business_day(day) else 1)
        for _ in range(steps):
            day = _previous_business_day(day, inclusive=False)
        return day
    if rule == "third_last_business_day":
        day = date(year, month, monthrange(year, month)[1])
        day = _previous_business_day(day, inclusive=True)
        for _ in range(2):
            day = _previous_business_day(day, inclusive=False)
        return day
    raise ValueError(f"{spec.root}: unknown last_trade rule {rule!r}")


@dataclass(frozen=True, slots=True)
class ParsedContract:
    """A futures symbol read against the table: the product and, unless continuous, its month."""

    spec: FuturesSpec
    year: int = 0
    month: int = 0
    nth: int = 0  # > 0: a continuous ticker (ES1! -> 1)


def resolve_year(digits: str, today: date) -> int:
    """Year from 1, 2 or 4 digits (one digit: nearest ahead of ``today``, at most 2 years back)."""
    if len(digits) == 4:
        return int(digits)
    if len(digits) == 2:
        return 2000 + int(digits)
    base = today.year - 2
    return base + (int(digits) - base) % 10


class FuturesTable:
    """The products this stack knows, by root."""

    def __init__(self, specs: dict[str, FuturesSpec]) -> None:
        self._specs = dict(specs)

    def __contains__(self, root: object) -> bool:
        return root in self._specs

    def __iter__(self) -> Iterator[FuturesSpec]:
        return iter(self._specs.values())

    def get(self, root: str) -> FuturesSpec | None:
        return self._specs.get(root)

    def spec(self, root: str) -> FuturesSpec:
        try:
            return self._specs[root]
        except KeyError:
            raise KeyError(f"no futures spec for root {root!r}") from None

    @property
    def roots(self) -> tuple[str, ...]:
        return tuple(self._specs)

    def parse(self, symbol: str, today: date) -> ParsedContract | None:
        """A dated symbol or continuous ticker of a known root (prefix already stripped), or None."""
        m = _CONTINUOUS_RE.match(symbol)
        if m:
            spec = self._specs.get(m["root"])
            return ParsedContract(spec, nth=int(m["n"])) if spec else None
        m = _DATED_RE.match(symbol)
        if m is None:
            return None
        spec = self._specs.get(m["root"])
        if spec is None:
            return None
        month = MONTH_CODES.index(m["code"]) + 1
        if month not in spec.months:
            raise ValueError(
                f"{symbol}: {spec.root} has no {m['code']} contract (listed: "
                + "".join(MONTH_CODES[i - 1] for i in spec.months)
                + ")"
            )
        return ParsedContract(spec, resolve_year(m["year"], today), month)


def _months(codes: str, root: str) -> tuple[int, ...]:
    bad = [c for c in codes if c not in MONTH_CODES]
    if bad or not codes:
        raise ValueError(f"{root}: months {codes!r} must be CME month codes ({MONTH_CODES})")
    return tuple(sorted(MONTH_CODES.index(c) + 1 for c in codes))


def _break(raw: str | None) -> tuple[time, time, str] | None:
    if not raw:
        return None
    span, zone = raw.split()
    start, end = span.split("-")
    return time.fromisoformat(start), time.fromisoformat(end), zone


def _spec(root: str, row: dict[str, Any], defaults: dict[str, Any]) -> FuturesSpec:
    merged = {**defaults, **row}
    rule = str(merged["last_trade"])
    if rule not in LAST_TRADE_RULES:
        raise ValueError(f"{root}: last_trade {rule!r} is not one of {LAST_TRADE_RULES}")
    margin = merged.get("initial_margin")
    return FuturesSpec(
        root=root,
        name=str(merged.get("name", root)),
        exchange=str(merged.get("exchange", "CME")),
        underlying=str(merged.get("underlying", root)),
        point_value=Decimal(str(merged["point_value"])),
        tick_size=Decimal(str(merged["tick_size"])),
        months=_months(str(merged["months"]), root),
        continuous_months=_months(str(merged["continuous_months"]), root)
        if merged.get("continuous_months")
        else (),
        last_trade=rule,
        last_trade_offset=int(merged.get("last_trade_offset", 0)),
        roll_days=int(merged.get("roll_days", 0)),
        calendar=str(merged.get("calendar", "CMES")),
        currency=str(merged.get("currency", "USD")),
        initial_margin=None if margin is None else Decimal(str(margin)),
        maintenance_break=_break(merged.get("maintenance_break")),
    )


def load_futures_table(path: Path | str | None = None) -> FuturesTable:
    """The table from ``path``, or the shipped ``app/models/futures.yaml``."""
    if path is None:
        text = resources.files("app.models").joinpath("futures.yaml").read_text("utf-8")
    else:
        text = Path(path).read_text("utf-8")
    data = yaml.safe_load(text) or {}
    defaults = data.get("defaults") or {}
    rows = data.get("contracts") or {}
    return FuturesTable(
        {str(r).upper(): _spec(str(r).upper(), row, defaults) for r, row in rows.items()}
    )


@cache
def default_futures_table() -> FuturesTable:
    return load_futures_table()
