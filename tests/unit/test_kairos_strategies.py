"""Each strategy on fixture bars (or a fixture book) with known signals."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.kairos.alerts import alert_body, alert_id
from app.kairos.indicators import bollinger, rsi, volume_ratio
from app.kairos.jobs import LoadedJob, load_jobs
from app.kairos.models import Account, Action, Position, QuoteSnapshot, Signal
from app.kairos.strategies.base import StrategyContext
from app.kairos.testing import bars_from
from app.models.market import Bar

JOBS = {
    j.name: j
    for j in load_jobs(Path(__file__).resolve().parents[2] / "deployment/kairos/jobs").jobs
}
T0 = int(datetime(2026, 11, 25, 14, 30, tzinfo=UTC).timestamp())
NOW = datetime(2026, 11, 25, 20, 0, tzinfo=UTC)
ACCOUNT = Account(equity=100_000.0, cash=100_000.0)


def ctx(job: LoadedJob, bars: dict[str, list[Bar]], **kw: object) -> StrategyContext:
    return StrategyContext(job=job.spec, now=NOW, bars=bars, **kw)  # type: ignore[arg-type]


def falling(n: int, drop: float, last_volume: float, step: int = 300) -> list[Bar]:
    """A zig-zag decline, then a last bar that drops ``drop`` on ``last_volume``."""
    closes = [100 - 0.05 * i + (0.08 if i % 2 else 0.0) for i in range(n - 1)]
    closes.append(closes[-1] - drop)
    return bars_from(closes, [1000.0] * (n - 1) + [last_volume], start=T0, step=step)


def rising(n: int, step: int = 300) -> list[Bar]:
    closes = [100 + 0.05 * i - (0.08 if i % 2 else 0.0) for i in range(n)]
    return bars_from(closes, [1000.0] * n, start=T0, step=step)


def position(symbol: str, qty: float, price: float) -> Position:
    return Position(
        symbol=symbol, quantity=qty, avg_price=price, last_price=price, market_value=qty * price
    )


# -- momentum ------------------------------------------------------------------------
def test_momentum_known_signals() -> None:
    job = JOBS["momentum"]
    bars = {
        "AAPL": falling(150, drop=2.0, last_volume=3000),  # oversold + breakout: most oversold
        "NVDA": falling(150, drop=0.3, last_volume=3000),  # oversold + breakout, less so
        "MSFT": falling(150, drop=2.0, last_volume=1100),  # oversold, no breakout
        "GOOGL": rising(150),  # not oversold
        "TSLA": rising(150),  # held and overbought: exit
        "AMD": falling(150, drop=2.0, last_volume=3000),  # already held: no second entry
    }
    # The fixtures mean what their names say:
    aapl_rsi = rsi([b.close for b in bars["AAPL"]])[-1]
    nvda_rsi = rsi([b.close for b in bars["NVDA"]])[-1]
    assert aapl_rsi is not None and nvda_rsi is not None and aapl_rsi < nvda_rsi < 30
    assert volume_ratio([b.volume for b in bars["AAPL"]]) == pytest.approx(3.0)
    assert volume_ratio([b.volume for b in bars["MSFT"]]) == pytest.approx(1.1)
    tsla_rsi = rsi([b.close for b in bars["TSLA"]])[-1]
    assert tsla_rsi is not None and tsla_rsi > 70

    book = {"TSLA": position("TSLA", 10, 107), "AMD": position("AMD", 5, 90)}
    signals = job.strategy.evaluate(ctx(job, bars, positions=book, account=ACCOUNT))

    last = bars["AAPL"][-1]
    assert [(s.symbol, s.action) for s in signals] == [("TSLA", Action.EXIT), ("AAPL", Action.BUY)]
    buy = signals[1]
    assert buy.bar_time == last.time
    assert buy.quantity == int(100_000 * 0.05 // last.close)
    assert buy.stop_loss == round(last.close * 0.97, 2)
    assert buy.take_profit == round(last.close * 1.06, 2)
    assert signals[0].quantity is None  # exit closes whatever is held


def test_momentum_respects_max_positions_and_flat_book() -> None:
    job = JOBS["momentum"]
    bars = {
        s: falling(150, drop=1.0 + i / 10, last_volume=3000) for i, s in enumerate(job.spec.symbols)
    }
    # Flat book, no account: three entries at most, unsized, most oversold first.
    signals = job.strategy.evaluate(ctx(job, bars))
    assert [s.symbol for s in signals] == ["NVDA", "AMD", "TSLA"]
    assert all(s.action is Action.BUY and s.quantity is None for s in signals)
    # Three already open: no slots left.
    full = {s: position(s, 1, 100) for s in ("AAPL", "GOOGL", "MSFT")}
    signals = job.strategy.evaluate(ctx(job, bars, positions=full))
    assert signals == []


def test_momentum_needs_enough_bars() -> None:
    job = JOBS["momentum"]
    assert job.strategy.evaluate(ctx(job, {"AAPL": falling(15, 2.0, 3000)})) == []


# -- mean reversion ------------------------------------------------------------------
def test_mean_reversion_known_signals() -> None:
    job = JOBS["mean_reversion"]
    flat = [100 + (0.1 if i % 2 else -0.1) for i in range(149)]
    spy = bars_from([*flat, 97.0], start=T0, step=900)  # break below the band, RSI collapses
    qqq = bars_from([*flat, 100.2], start=T0, step=900)  # held, back above the middle
    dia = bars_from([*flat, 99.95], start=T0, step=900)  # inside the band: nothing
    iwm = bars_from([*flat[:-1], 98.0, 97.5], start=T0, step=900)  # a buy too, less extreme
    closes = [b.close for b in spy]
    band, value = bollinger(closes)[-1], rsi(closes)[-1]
    assert band is not None and value is not None and closes[-1] < band.lower and value < 30

    book = {"QQQ": position("QQQ", 20, 100)}
    bars = {"SPY": spy, "QQQ": qqq, "DIA": dia, "IWM": iwm}
    signals = job.strategy.evaluate(ctx(job, bars, positions=book, account=ACCOUNT))
    got = [(s.symbol, s.action) for s in signals]
    # Exits first, then entries most extreme RSI first (SPY 22.8 before IWM 25.7).
    assert got == [("QQQ", Action.EXIT), ("SPY", Action.BUY), ("IWM", Action.BUY)]
    spy_buy = next(s for s in signals if s.symbol == "SPY")
    assert spy_buy.quantity == int(100_000 * 0.08 // 97.0)
    assert spy_buy.stop_loss == round(97.0 * 0.95, 2) and spy_buy.take_profit == round(
        97.0 * 1.04, 2
    )
    assert all(s.action is not Action.SELL for s in signals)  # long-only by default


# -- rebalance -------------------------------------------------------------------------
PRICES = {
    "SPY": 500,
    "QQQ": 400,
    "VTI": 250,
    "IWM": 200,
    "XLK": 200,
    "XLF": 50,
    "XLE": 80,
    "XLV": 150,
}


def book_ctx(holdings: dict[str, int], cash: float) -> StrategyContext:
    job = JOBS["portfolio_rebalance"]
    positions = {s: position(s, q, PRICES[s]) for s, q in holdings.items() if q}
    equity = cash + sum(p.value for p in positions.values())
    quotes = {s: QuoteSnapshot(symbol=s, last=p) for s, p in PRICES.items()}
    return StrategyContext(
        job=job.spec,
        now=NOW,
        quotes=quotes,
        positions=positions,
        account=Account(equity=equity, cash=cash),
    )


def test_rebalance_on_fixture_book() -> None:
    job = JOBS["portfolio_rebalance"]
    # Equity 100,000: SPY at 50% (target 40%) drifts 10 points -> rebalance everything.
    holdings = {
        "SPY": 100,
        "QQQ": 50,
        "VTI": 60,
        "IWM": 20,
        "XLK": 18,
        "XLF": 74,
        "XLE": 40,
        "XLV": 0,
    }
    signals = job.strategy.evaluate(book_ctx(holdings, cash=500))
    got = [(s.symbol, s.action, s.quantity) for s in signals]
    assert got == [
        ("SPY", Action.SELL, 20),  # 50,000 -> 40,000: sells first
        ("IWM", Action.BUY, 30),  # 4,000 -> 10,000
        ("XLE", Action.BUY, 6),  # 3,200 -> 3,750: 6 whole shares ($480)
        ("XLV", Action.BUY, 25),  # 0 -> 3,750
    ]  # QQQ/VTI on target; XLK (+$150 < 1 share) and XLF (+1 share = $50 < $100) skipped
    day = int(datetime(2026, 11, 25, tzinfo=UTC).timestamp())
    assert {s.bar_time for s in signals} == {day}  # one decision per trading day


def test_rebalance_within_threshold_does_nothing() -> None:
    job = JOBS["portfolio_rebalance"]
    holdings = {
        "SPY": 88,
        "QQQ": 50,
        "VTI": 60,
        "IWM": 30,
        "XLK": 18,
        "XLF": 74,
        "XLE": 46,
        "XLV": 25,
    }
    assert job.strategy.evaluate(book_ctx(holdings, cash=1_000)) == []  # SPY 44% < 5 points off
    assert job.strategy.evaluate(book_ctx({}, cash=0)) == []  # no equity, no trades


def test_rebalance_from_cash() -> None:
    job = JOBS["portfolio_rebalance"]
    signals = job.strategy.evaluate(book_ctx({}, cash=100_000))
    assert {s.symbol: s.quantity for s in signals} == {
        "SPY": 80, "QQQ": 50, "VTI": 60, "IWM": 50, "XLK": 18, "XLF": 75, "XLE": 46, "XLV": 25,
    }  # fmt: skip
    assert all(s.action is Action.BUY for s in signals)


# -- alerts ---------------------------------------------------------------------------
def test_alert_id_is_deterministic_and_body_is_the_contract() -> None:
    sig = Signal(
        symbol="AAPL", action=Action.BUY, bar_time=T0, quantity=3, stop_loss=97.0, take_profit=106.0
    )
    body = alert_body("momentum", sig)
    assert body == {
        "ticker": "AAPL",
        "action": "buy",
        "order_type": "market",
        "strategy": "momentum",
        "alert_id": alert_id("momentum", "AAPL", "buy", T0),
        "time": "2026-11-25T14:30:00Z",
        "quantity": 3,
        "stop_loss": 97.0,
        "take_profit": 106.0,
    }
    assert alert_id("momentum", "AAPL", "buy", T0) == alert_body("momentum", sig)["alert_id"]
    assert alert_id("momentum", "AAPL", "buy", T0) != alert_id("momentum", "AAPL", "buy", T0 + 300)
    assert alert_id("momentum", "AAPL", "buy", T0) != alert_id("momentum", "AAPL", "exit", T0)
    assert alert_id("momentum", "AAPL", "buy", T0) != alert_id("other", "AAPL", "buy", T0)
    exit_body = alert_body("momentum", Signal(symbol="AAPL", action=Action.EXIT, bar_time=T0))
    assert "quantity" not in exit_body and "stop_loss" not in exit_body
