from __future__ import annotations

from datetime import date
from decimal import ROUND_DOWN, Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.models.crypto import parse_crypto_pair
from app.models.futures import default_futures_table, load_futures_table
from app.models.instruments import (
    Instrument,
    InstrumentKind,
    InstrumentRegistry,
    OptionRight,
)
from app.models.occ import OccSymbol, format_occ, parse_occ

D = Decimal


def registry(today: date = date(2026, 12, 9), **kwargs: object) -> InstrumentRegistry:
    return InstrumentRegistry(today=lambda: today, **kwargs)  # type: ignore[arg-type]


# -- OCC symbols ----------------------------------------------------------------------


def test_occ_symbol_fields() -> None:
    occ = parse_occ("SPY261218C00600000")
    assert occ == OccSymbol("SPY", date(2026, 12, 18), OptionRight.CALL, D("600.000"))
    assert str(occ.strike) == "600.000"


def test_occ_decimal_strike_and_six_char_root() -> None:
    contract = OccSymbol("GOOGL1", date(2027, 1, 15), OptionRight.PUT, D("52.5"))
    assert format_occ(contract) == "GOOGL1270115P00052500"
    assert format_occ(contract, padded=True) == "GOOGL1270115P00052500"
    assert parse_occ("GOOGL1270115P00052500") == contract


def test_occ_padded_osi_form_parses_to_the_compact_one() -> None:
    padded = "SPY   261218C00600000"
    assert parse_occ(padded) == parse_occ("SPY261218C00600000")
    assert format_occ(parse_occ(padded), padded=True) == padded
    assert format_occ(parse_occ(padded)) == "SPY261218C00600000"


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("261218C00600000", "too short"),
        ("SPY261218X00600000", "right 'X' must be C or P"),
        ("SPY261318C00600000", "not a calendar date"),
        ("SPY26121AC00600000", "not YYMMDD"),
        ("SPY261218C0060000A", "not 8 digits"),
        ("SPY261218C00000000", "strike is zero"),
        ("TOOLONG261218C00600000", "longer than 6"),
        ("1SPY261218C00600000", "starting with a letter"),
    ],
)
def test_invalid_occ_symbols_name_the_problem(raw: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_occ(raw)


@pytest.mark.parametrize(
    ("strike", "problem"),
    [(D("52.0005"), "multiple of 0.001"), (D("100000"), "outside"), (D("0"), "outside")],
)
def test_unformattable_strikes_are_refused(strike: Decimal, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        format_occ(OccSymbol("SPY", date(2026, 12, 18), OptionRight.CALL, strike))


roots = st.from_regex(r"[A-Z][A-Z0-9]{0,5}", fullmatch=True)
expiries = st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31))
rights = st.sampled_from(list(OptionRight))
thousandths = st.integers(min_value=1, max_value=99_999_999)


@given(roots, expiries, rights, thousandths)
def test_occ_fields_round_trip(root: str, expiry: date, right: OptionRight, n: int) -> None:
    fields = OccSymbol(root, expiry, right, D(n) / 1000)
    assert parse_occ(format_occ(fields)) == fields
    assert parse_occ(format_occ(fields, padded=True)) == fields


@given(roots, expiries, st.sampled_from("CP"), thousandths, st.booleans())
def test_occ_strings_round_trip(root: str, expiry: date, letter: str, n: int, padded: bool) -> None:
    head = root.ljust(6) if padded else root
    raw = f"{head}{expiry:%y%m%d}{letter}{n:08d}"
    assert format_occ(parse_occ(raw), padded=padded) == raw


# -- options ---------------------------------------------------------------------------


def test_option_from_occ_has_multiplier_100_and_notional_times_100() -> None:
    opt = registry().get("SPY261218C00600000")
    assert opt.kind is InstrumentKind.OPTION
    assert (opt.underlying, opt.expiry, opt.right, opt.strike) == (
        "SPY",
        date(2026, 12, 18),
        OptionRight.CALL,
        D(600),
    )
    assert opt.multiplier == 100
    assert opt.notional(3, "2.15") == D("645.00")
    assert opt.pnl(-2, "2.15", "1.40") == D("150.00")  # a short that fell 0.75


def test_option_takes_its_underlyings_calendar() -> None:
    reg = registry()
    reg.register(Instrument.equity("RY", calendar="XTSE"))
    assert reg.get("RY   270115P00120000").calendar == "XTSE"
    assert reg.get("SPY261218P00500000").calendar == "XNYS"


# -- crypto ----------------------------------------------------------------------------


def btc(step: str = "0.0001") -> Instrument:
    return Instrument.crypto("BTC/USDT", quantity_step=step, tick_size="0.01")


def test_fractional_quantity_on_the_step() -> None:
    inst = btc()
    assert inst.valid_quantity(D("0.0375"))
    assert inst.valid_quantity(0.0375)  # a float goes through its repr, not its binary value
    check = inst.valid_quantity(D("0.03755"))
    assert not check
    assert "step 0.0001" in check.reason and "0.0375" in check.reason
    assert inst.round_quantity(D("0.03755")) == D("0.0375")
    assert inst.round_quantity(D("0.03759999")) == D("0.0375")


def test_quantity_below_minimum_or_not_positive() -> None:
    inst = Instrument.crypto("BTC/USDT", quantity_step="0.0001", min_quantity="0.001")
    assert "minimum 0.001" in inst.valid_quantity(D("0.0005")).reason
    assert "must be positive" in inst.valid_quantity(0).reason
    assert "must be positive" in inst.valid_quantity(D("-0.0375")).reason


@pytest.mark.parametrize(
    "raw", ["BINANCE:BTCUSDT", "BTCUSDT", "BTC/USDT", "btc-usdt", "binance:btcusdt"]
)
def test_crypto_spellings_unify_to_ccxt_symbol(raw: str) -> None:
    inst = registry().get(raw)
    assert inst.symbol == "BTC/USDT"
    assert (inst.kind, inst.base, inst.quote, inst.calendar) == (
        InstrumentKind.CRYPTO,
        "BTC",
        "USDT",
        "24/7",
    )
    assert inst.quantity_step == D("0.00000001")


def test_registered_market_overrides_crypto_defaults_for_every_spelling() -> None:
    reg = registry()
    assert reg.get("BINANCE:BTCUSDT").quantity_step == D("0.00000001")  # cached default
    reg.register(btc())
    for raw in ("BINANCE:BTCUSDT", "BTCUSDT", "BTC/USDT"):
        assert reg.get(raw).quantity_step == D("0.0001")


@pytest.mark.parametrize(
    ("raw", "exchange", "pair"),
    [
        ("ETHBTC", "", ("ETH", "BTC")),
        ("SOLUSD", "", ("SOL", "USD")),
        ("BTC-USD", "", ("BTC", "USD")),
        ("PEPEFDUSD", "", ("PEPE", "FDUSD")),
        ("ABCUSD", "COINBASE", ("ABC", "USD")),
        ("ABCUSD", "", None),  # a stock-like ticker without a crypto venue stays a stock
        ("BRK-B", "", None),
        ("BRK/B", "", None),
        ("AAPL", "", None),
        ("USDT", "", None),
    ],
)
def test_crypto_pair_parsing(raw: str, exchange: str, pair: tuple[str, str] | None) -> None:
    parsed = parse_crypto_pair(raw, exchange=exchange)
    assert (None if parsed is None else (parsed.base, parsed.quote)) == pair


# -- futures ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("on", "ticker", "expected"),
    [
        (date(2026, 9, 30), "ES1!", "ESZ6"),
        (date(2026, 12, 9), "ES1!", "ESZ6"),  # the day before CME's roll Thursday
        (date(2026, 12, 10), "ES1!", "ESH7"),  # roll date: 8 days before the 3rd Friday (18th)
        (date(2026, 12, 9), "ES2!", "ESH7"),
        (date(2026, 12, 10), "ES2!", "ESM7"),
        (date(2026, 12, 10), "CME_MINI:MNQ1!", "MNQH7"),
        (date(2026, 6, 9), "ES1!", "ESM6"),
        (date(2026, 6, 10), "ES1!", "ESU6"),  # June 2026 expires Thu 18th (19th: Juneteenth)
    ],
)
def test_continuous_ticker_maps_to_the_dated_contract(on: date, ticker: str, expected: str) -> None:
    assert registry().get(ticker, on=on).symbol == expected


def test_continuous_uses_the_registry_clock_and_configured_roll() -> None:
    assert registry(date(2026, 12, 10)).get("ES1!").symbol == "ESH7"
    late = registry(date(2026, 12, 17), roll_days={"ES": 0})
    assert late.get("ES1!").symbol == "ESZ6"
    assert late.get("ES1!", on=date(2026, 12, 18)).symbol == "ESH7"


@pytest.mark.parametrize(
    ("symbol", "expiry"),
    [
        ("ESZ6", date(2026, 12, 18)),
        ("ESM6", date(2026, 6, 18)),  # 3rd Friday is Juneteenth: the business day before
        ("CLF7", date(2026, 12, 21)),  # the 25th is Christmas: 4 business days before it
        ("CLG7", date(2027, 1, 20)),  # 25 Jan 2027 is a Monday: 3 business days before
        ("MCLG7", date(2027, 1, 19)),  # one business day before CL
        ("GCZ6", date(2026, 12, 29)),  # third last business day of December
    ],
)
def test_last_trading_days(symbol: str, expiry: date) -> None:
    assert registry().get(symbol).expiry == expiry


def test_dated_symbol_spellings_are_one_contract() -> None:
    reg = registry()
    es = reg.get("ESZ6")
    for raw in ("ESZ2026", "ESZ26", "CME_MINI:ESZ2026", "esz6"):
        assert reg.get(raw) == es
    assert es.contract_month == date(2026, 12, 1)
    assert (es.root, es.multiplier, es.tick_size, es.calendar) == ("ES", D(50), D("0.25"), "CMES")
    assert reg.get("ESZ5").expiry == date(2025, 12, 19)  # one digit: nearest ahead, <= 2 years back


def test_unlisted_futures_month_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="ES has no F contract"):
        registry().get("ESF7")


def test_futures_pnl_is_points_times_point_value() -> None:
    reg = registry()
    mnq = reg.get("MNQ1!")
    assert mnq.pnl(3, "21000.25", "21002.25") == D("12.00")  # 2 points x $2 x 3
    assert reg.get("MESZ6").pnl(2, 6000, 6010) == D(100)  # 10 points x $5 x 2
    assert reg.get("ES1!").tick_value == D("12.50")
    assert reg.get("CL1!").notional(1, "70.15") == D("70150.00")


def test_prices_round_to_the_tick() -> None:
    es = registry().get("ESZ6")
    assert es.round_price("6000.13") == D("6000.25")
    assert es.round_price("6000.12") == D("6000.00")
    assert es.round_price("6000.24", ROUND_DOWN) == D("6000.00")
    assert registry().get("AAPL").round_price(187.456) == D("187.46")


def test_futures_table_ships_the_products_with_positive_specs() -> None:
    table = default_futures_table()
    wanted = {"ES", "MES", "NQ", "MNQ", "YM", "MYM", "RTY", "M2K", "CL", "MCL", "GC", "MGC"}
    assert wanted <= set(table.roots)
    for spec in table:
        assert spec.point_value > 0 and spec.tick_size > 0 and spec.months
        assert spec.initial_margin is not None and spec.initial_margin > 0
    assert table.spec("ES").months == (3, 6, 9, 12)
    assert len(table.spec("CL").months) == 12
    assert table.spec("GC").cycle() == (2, 4, 6, 8, 10, 12)


def test_futures_table_from_a_user_file(tmp_path: Path) -> None:
    path = tmp_path / "futures.yaml"
    path.write_text(
        "contracts:\n  ES:\n    point_value: '50'\n    tick_size: '0.25'\n    months: HMUZ\n"
        "    last_trade: third_friday\n    roll_days: 2\n    initial_margin: '30000'\n"
    )
    reg = registry(futures=load_futures_table(path))
    es = reg.get("ES1!", on=date(2026, 12, 15))
    assert (es.symbol, es.initial_margin) == ("ESZ6", D(30000))
    with pytest.raises(ValueError, match="not a continuous ticker of a known futures root"):
        reg.get("CL1!")  # not in this table


# -- defaults and the registry ----------------------------------------------------------


def test_unknown_plain_ticker_is_a_whole_share_equity() -> None:
    inst = registry().get("nasdaq:zzzz")
    assert inst == Instrument("ZZZZ", InstrumentKind.EQUITY)
    assert (inst.multiplier, inst.quantity_step, inst.min_quantity, inst.calendar) == (
        D(1),
        D(1),
        D(1),
        "XNYS",
    )
    assert inst.notional(10, "187.25") == D("1872.50")
    assert not inst.valid_quantity(D("1.5"))


@pytest.mark.parametrize("raw", ["", "   ", "1ABC", "AA$B"])
def test_non_symbols_are_refused(raw: str) -> None:
    with pytest.raises(ValueError):
        registry().get(raw)


def test_lookups_are_cached_and_register_replaces() -> None:
    reg = registry()
    first = reg.get("AAPL")
    assert reg.get("AAPL") is first
    reg.register(Instrument.equity("AAPL", quantity_step=D("0.001"), min_quantity=D("0.001")))
    assert reg.get("AAPL").valid_quantity(D("0.125"))
    assert reg.get("NASDAQ:AAPL").quantity_step == D("0.001")


def test_instrument_refuses_inconsistent_fields() -> None:
    with pytest.raises(ValueError, match="quantity_step must be a positive Decimal"):
        Instrument("X", InstrumentKind.EQUITY, quantity_step=D(0))
    with pytest.raises(ValueError, match="an option needs"):
        Instrument("X", InstrumentKind.OPTION)
