"""What is traded: one model for equities, options, futures and crypto, and a registry.

Every amount of money is ``quantity x price x multiplier`` (:meth:`Instrument.notional`):
100 for a standard option contract, a future's point value, 1 for shares and coins.
Multipliers, ticks, steps and strikes are ``Decimal`` so cash and P&L add up to the cent.
Instruments are frozen slotted dataclasses and the registry memoises every lookup, so the
order path pays a dict lookup per symbol, not a parse.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from enum import StrEnum
from zoneinfo import ZoneInfo

from app.models.crypto import KNOWN_BASES, CryptoPair, parse_crypto_pair
from app.models.futures import FuturesSpec, FuturesTable, default_futures_table
from app.models.market import is_valid_symbol
from app.models.occ import OccSymbol, OptionRight, format_occ, is_occ, parse_occ

__all__ = [
    "CryptoDefaults",
    "Instrument",
    "InstrumentKind",
    "InstrumentRegistry",
    "OptionRight",
    "QuantityCheck",
    "to_decimal",
]

Number = Decimal | int | float | str

ONE = Decimal(1)
CENT = Decimal("0.01")
OPTION_MULTIPLIER = Decimal(100)
ALWAYS_OPEN = "24/7"  # exchange_calendars' code for a market that never closes
_NEW_YORK = ZoneInfo("America/New_York")


def to_decimal(value: Number) -> Decimal:
    """Exact ``Decimal``; a float goes through its shortest repr (0.1 -> 0.1, not 0.1000000000000000055...)."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(value)


class InstrumentKind(StrEnum):
    EQUITY = "equity"
    OPTION = "option"
    FUTURE = "future"
    CRYPTO = "crypto"


@dataclass(frozen=True, slots=True)
class QuantityCheck:
    """Whether a quantity can be traded, and if not why (truthy when it can)."""

    ok: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.ok


_VALID = QuantityCheck(True)


@dataclass(frozen=True, slots=True)
class Instrument:
    """One tradable thing. Derivative fields are None where they do not apply.

    ``calendar`` is an exchange_calendars code ("XNYS", "CMES", "24/7"). For a future,
    ``underlying`` is the index or commodity (SPX, WTI), ``root`` the product (ES) and
    ``contract_month`` the first day of the delivery month; ``expiry`` is the last
    trading day. For crypto, ``underlying`` is the base asset and ``currency`` the quote.
    """

    symbol: str
    kind: InstrumentKind
    multiplier: Decimal = ONE
    tick_size: Decimal = CENT
    quantity_step: Decimal = ONE
    min_quantity: Decimal = ONE
    calendar: str = "XNYS"
    currency: str = "USD"
    underlying: str | None = None
    expiry: date | None = None
    right: OptionRight | None = None
    strike: Decimal | None = None
    root: str | None = None
    contract_month: date | None = None
    min_notional: Decimal | None = None
    initial_margin: Decimal | None = None
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        for name in ("multiplier", "tick_size", "quantity_step"):
            value = getattr(self, name)
            if not isinstance(value, Decimal) or value <= 0:
                raise ValueError(f"{self.symbol}: {name} must be a positive Decimal, not {value!r}")
        if not isinstance(self.min_quantity, Decimal) or self.min_quantity < 0:
            raise ValueError(f"{self.symbol}: min_quantity must be a Decimal >= 0")
        if self.kind is InstrumentKind.OPTION and None in (
            self.underlying,
            self.expiry,
            self.right,
            self.strike,
        ):
            raise ValueError(f"{self.symbol}: an option needs underlying, expiry, right and strike")
        if self.kind is InstrumentKind.FUTURE and None in (self.root, self.contract_month):
            raise ValueError(f"{self.symbol}: a future needs root and contract_month")

    # -- constructors -------------------------------------------------------------------

    @classmethod
    def equity(cls, symbol: str, **fields: object) -> Instrument:
        """A share: multiplier 1, whole-share steps unless ``quantity_step`` says otherwise."""
        return cls(symbol, InstrumentKind.EQUITY, **fields)  # type: ignore[arg-type]

    @classmethod
    def option(
        cls, occ: OccSymbol | str, *, calendar: str = "XNYS", **fields: object
    ) -> Instrument:
        """A standard contract (100 shares) from its OCC symbol or fields."""
        contract = parse_occ(occ) if isinstance(occ, str) else occ
        values: dict[str, object] = {"multiplier": OPTION_MULTIPLIER, "calendar": calendar}
        values.update(fields)
        return cls(
            format_occ(contract),
            InstrumentKind.OPTION,
            underlying=contract.underlying,
            expiry=contract.expiry,
            right=contract.right,
            strike=contract.strike,
            **values,  # type: ignore[arg-type]
        )

    @classmethod
    def future(cls, spec: FuturesSpec, year: int, month: int) -> Instrument:
        """The ``year``/``month`` contract of a product in the futures table."""
        return cls(
            spec.symbol(year, month),
            InstrumentKind.FUTURE,
            multiplier=spec.point_value,
            tick_size=spec.tick_size,
            calendar=spec.calendar,
            currency=spec.currency,
            underlying=spec.underlying,
            expiry=spec.last_trade_date(year, month),
            root=spec.root,
            contract_month=date(year, month, 1),
            initial_margin=spec.initial_margin,
            description=spec.name,
        )

    @classmethod
    def crypto(
        cls,
        pair: CryptoPair | str,
        *,
        quantity_step: Number,
        min_quantity: Number | None = None,
        tick_size: Number = "0.00000001",
        min_notional: Number | None = None,
        calendar: str = ALWAYS_OPEN,
    ) -> Instrument:
        """A spot pair, e.g. from a ccxt market's ``precision`` and ``limits``."""
        if isinstance(pair, str):
            parsed = parse_crypto_pair(pair.rpartition(":")[2] if "/" not in pair else pair)
            if parsed is None:
                raise ValueError(f"not a crypto pair: {pair!r}")
            pair = parsed
        step = to_decimal(quantity_step)
        return cls(
            pair.symbol,
            InstrumentKind.CRYPTO,
            tick_size=to_decimal(tick_size),
            quantity_step=step,
            min_quantity=step if min_quantity is None else to_decimal(min_quantity),
            calendar=calendar,
            currency=pair.quote,
            underlying=pair.base,
            min_notional=None if min_notional is None else to_decimal(min_notional),
        )

    # -- reading ------------------------------------------------------------------------

    @property
    def base(self) -> str | None:
        """Crypto: the asset bought (BTC in BTC/USDT)."""
        return self.underlying if self.kind is InstrumentKind.CRYPTO else None

    @property
    def quote(self) -> str:
        """The currency prices are in (USDT in BTC/USDT)."""
        return self.currency

    @property
    def tick_value(self) -> Decimal:
        """Money per tick per unit: $12.50 for ES, $1 for an option at a 0.01 tick."""
        return self.tick_size * self.multiplier

    @property
    def occ(self) -> OccSymbol | None:
        if self.kind is not InstrumentKind.OPTION:
            return None
        assert self.underlying and self.expiry and self.right and self.strike is not None
        return OccSymbol(self.underlying, self.expiry, self.right, self.strike)

    # -- arithmetic ---------------------------------------------------------------------

    def notional(self, quantity: Number, price: Number) -> Decimal:
        """``quantity x price x multiplier`` (signed as the quantity is)."""
        return to_decimal(quantity) * to_decimal(price) * self.multiplier

    def pnl(self, quantity: Number, entry_price: Number, exit_price: Number) -> Decimal:
        """P&L of ``quantity`` (negative = short) from entry to exit: points x multiplier x qty."""
        return (
            (to_decimal(exit_price) - to_decimal(entry_price))
            * to_decimal(quantity)
            * self.multiplier
        )

    def round_quantity(self, quantity: Number) -> Decimal:
        """Down (toward zero) to a whole number of steps: sizing never exceeds what it computed."""
        q = to_decimal(quantity)
        step = self.quantity_step
        return (q / step).to_integral_value(ROUND_DOWN) * step

    def valid_quantity(self, quantity: Number) -> QuantityCheck:
        """A positive order quantity on the step and at least the minimum."""
        q = to_decimal(quantity)
        if not q.is_finite() or q <= 0:
            return QuantityCheck(False, f"quantity {quantity} must be positive")
        if q % self.quantity_step != 0:
            return QuantityCheck(
                False,
                f"quantity {quantity} is not a multiple of {self.symbol}'s step "
                f"{self.quantity_step} (nearest below: {self.round_quantity(q)})",
            )
        if q < self.min_quantity:
            return QuantityCheck(
                False, f"quantity {quantity} is below {self.symbol}'s minimum {self.min_quantity}"
            )
        return _VALID

    def round_price(self, price: Number, rounding: str = ROUND_HALF_UP) -> Decimal:
        """To the nearest tick (half up); pass ``ROUND_DOWN``/``ROUND_UP`` for a side-aware limit."""
        tick = self.tick_size
        return (to_decimal(price) / tick).to_integral_value(rounding) * tick


@dataclass(frozen=True, slots=True)
class CryptoDefaults:
    """Used for pairs no feed has registered yet; a ccxt market's precision replaces them."""

    quantity_step: Decimal = Decimal("0.00000001")
    min_quantity: Decimal | None = None  # None: one step
    tick_size: Decimal = Decimal("0.00000001")
    calendar: str = ALWAYS_OPEN


def _new_york_today() -> date:
    return datetime.now(_NEW_YORK).date()


class InstrumentRegistry:
    """Symbol -> :class:`Instrument`, memoised.

    Unknown plain tickers are XNYS equities (multiplier 1, step 1); OCC symbols are options
    (multiplier 100) on their underlying's calendar; futures symbols and continuous tickers
    come from the futures table; crypto pairs are 24/7 with :class:`CryptoDefaults`.
    Anything a feed learns (a Tradier lookup, a ccxt market) is :meth:`register`-ed and
    wins over those defaults. ``today`` is the clock continuous tickers roll by.
    """

    def __init__(
        self,
        *,
        futures: FuturesTable | None = None,
        roll_days: Mapping[str, int] | None = None,
        crypto: CryptoDefaults | None = None,
        equity_calendar: str = "XNYS",
        today: Callable[[], date] = _new_york_today,
    ) -> None:
        self._futures = futures if futures is not None else default_futures_table()
        self._roll_days = {k.upper(): v for k, v in (roll_days or {}).items()}
        self._crypto = crypto or CryptoDefaults()
        self._equity_calendar = equity_calendar
        self._today = today
        self._registered: dict[str, Instrument] = {}
        self._bases = set(KNOWN_BASES)
        self._cache: dict[str, Instrument] = {}
        self._rolled: dict[tuple[str, date], Instrument] = {}

    @property
    def futures(self) -> FuturesTable:
        return self._futures

    def register(self, instrument: Instrument, *aliases: str) -> None:
        """Make ``instrument`` the answer for its symbol (and ``aliases``); clears the cache."""
        self._registered[instrument.symbol.upper()] = instrument
        for alias in aliases:
            self._registered[alias.strip().upper()] = instrument
        if instrument.kind is InstrumentKind.CRYPTO and instrument.underlying:
            self._bases.add(instrument.underlying)
        self._cache.clear()
        self._rolled.clear()

    def get(self, symbol: str, *, on: date | None = None) -> Instrument:
        """The instrument ``symbol`` names; ``on`` picks the day a continuous ticker (ES1!) resolves for.

        Raises ``ValueError`` for a string that is no symbol, an invalid OCC symbol or a
        futures month its product does not list.
        """
        hit = self._cache.get(symbol)
        if hit is not None:
            return hit
        key = symbol.strip().upper()
        if key.endswith("!"):
            return self._continuous(key, on or self._today())
        hit = self._cache.get(key)
        if hit is None:
            hit = self._resolve(key)
            self._cache[key] = hit
        self._cache[symbol] = hit
        return hit

    def continuous_symbol(self, ticker: str, on: date) -> str:
        """The dated contract a continuous ticker means on ``on``: ``ES1!`` -> ``ESZ6``."""
        return self._continuous(ticker.strip().upper(), on).symbol

    def _continuous(self, key: str, on: date) -> Instrument:
        hit = self._rolled.get((key, on))
        if hit is not None:
            return hit
        _, text = _split_prefix(key)
        parsed = self._futures.parse(text, on)
        if parsed is None or parsed.nth == 0:
            raise ValueError(f"{key!r} is not a continuous ticker of a known futures root")
        spec = parsed.spec
        year, month = spec.contract_on(on, parsed.nth, self._roll_days.get(spec.root))
        # built from (year, month), not re-parsed: ESZ6's one digit is read against the
        # registry's clock, ``on`` may be another decade
        hit = self._registered.get(spec.symbol(year, month)) or Instrument.future(spec, year, month)
        self._rolled[(key, on)] = hit
        return hit

    def _resolve(self, key: str) -> Instrument:
        exact = self._registered.get(key)
        if exact is not None:
            return exact
        prefix, text = _split_prefix(key)
        if not text:
            raise ValueError(f"empty symbol {key!r}")
        if text != key and text in self._registered:
            return self._registered[text]
        built = self._build(prefix, text)
        return self._registered.get(built.symbol, built)

    def _build(self, prefix: str, text: str) -> Instrument:
        if is_occ(text):
            contract = parse_occ(text)
            calendar = self.get(contract.underlying).calendar
            return Instrument.option(contract, calendar=calendar)
        if any(c.isdigit() for c in text) or text.endswith("!"):
            parsed = self._futures.parse(text, self._today())
            if parsed is not None and parsed.nth == 0:
                return Instrument.future(parsed.spec, parsed.year, parsed.month)
        pair = parse_crypto_pair(text, exchange=prefix, known_bases=frozenset(self._bases))
        if pair is not None:
            d = self._crypto
            return Instrument.crypto(
                pair,
                quantity_step=d.quantity_step,
                min_quantity=d.min_quantity,
                tick_size=d.tick_size,
                calendar=d.calendar,
            )
        if not is_valid_symbol(text):
            raise ValueError(f"not a symbol: {text!r}")
        return Instrument.equity(text, calendar=self._equity_calendar)


def _split_prefix(key: str) -> tuple[str, str]:
    """``BINANCE:BTCUSDT`` -> (``BINANCE``, ``BTCUSDT``); ccxt's ``BTC/USDT:USDT`` keeps its suffix."""
    head, sep, rest = key.partition(":")
    if not sep or "/" in head:
        return "", key
    return head, rest


_SHARED: list[InstrumentRegistry] = []


def shared_registry() -> InstrumentRegistry:
    """The process's registry (built on first use): what the book, analytics and journal
    ask for multipliers when nothing more specific was registered."""
    if not _SHARED:
        _SHARED.append(InstrumentRegistry())
    return _SHARED[0]


def multiplier_of(symbol: str) -> float:
    """What one unit of price is worth per unit held: 100 for an OCC option symbol, a
    future's point value, 1 for shares, coins and anything the registry cannot read."""
    try:
        return float(shared_registry().get(symbol).multiplier)
    except ValueError:
        return 1.0
