"""Risk engine latency: p50/p99 and throughput of ``check()`` with every check enabled.

Run: ``.venv/bin/python -m tests.bench.bench_risk [--n 200000]``. The baseline, measured
in the same run and the same way, is a no-op method with the same signature, so the
ratio shows the engine's own cost independent of the machine's timer overhead.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

from app.models.orders import Intent, OrderRequest, OrderType
from app.models.portfolio import AccountState
from app.risk import RiskDecision, RiskEngine, parse_limits
from tests.bench.common import record
from tests.support.risk import harness

# A Tuesday 15:00 UTC (10:00 New York): inside the XNYS session.
NOW = datetime(2026, 11, 17, 15, 0, tzinfo=UTC).timestamp()
SYMBOLS = ["AAPL", "MSFT", "NVDA", "AMD", "SPY", "QQQ", "TSLA", "IWM"]

LIMITS = {
    "market_hours": {"mode": "exchange", "calendar": "XNYS"},
    "circuit_breaker": {"max_errors": 5, "max_loss": 5_000},
    "rate_limit": {
        "global": {"max_orders": 1_000_000, "window_seconds": 60},
        "per_symbol": {"max_orders": 1_000_000, "window_seconds": 60},
    },
    "daily_loss": {"max_loss": 10_000},
    "min_balance": {"min_equity": 2_000, "min_cash": -1_000_000},
    "leverage": {"max_leverage": 4},
    "max_open_positions": {"max_positions": 20},
    "concentration": {"max_pct": 50},
    "sector_concentration": {"max_pct": 100, "sectors": {"AAPL": "Technology"}},
    "position_size": {"max_shares": 10_000, "max_notional": 200_000},
    "order_notional": {"max_notional": 50_000},
    "price_collar": {"max_deviation_pct": 5, "require_quote": True},
    "quantity": {"min_quantity": 1, "max_quantity": 5_000},
    "volatility": {"max_annualized_pct": 10_000, "window": 60, "min_samples": 10},
    "duplicate": {"window_seconds": 5},
    "strategies": {"momo": {"position_size": {"max_shares": 500}}},
}


class Baseline:
    """Same call shape as ``RiskEngine.check``, doing nothing but building a decision."""

    def check(self, order: OrderRequest, price: float | None = None) -> RiskDecision:
        return RiskDecision(True)


def build_engine() -> RiskEngine:
    clock_now = [NOW]
    engine = harness(RiskEngine(parse_limits(LIMITS, "bench"), clock=lambda: clock_now[0]))
    engine.update_account(
        AccountState(account="bench", cash=500_000, equity=500_000, buying_power=1_000_000)
    )
    for i, sym in enumerate(SYMBOLS):
        price = 100.0 + 10 * i
        for k in range(60):
            engine.on_quote(sym, price * (1 + 0.0005 * ((-1) ** k)), NOW - 60 + k)
        engine.update_position(sym, 100 * (i + 1), price)
    return engine


def orders() -> list[OrderRequest]:
    out = []
    for i in range(1024):
        sym = SYMBOLS[i % len(SYMBOLS)]
        limit = i % 3 == 0
        out.append(
            OrderRequest(
                client_order_id=f"b{i}",
                symbol=sym,
                intent=Intent.BUY if i % 4 else Intent.SELL,
                quantity=1 + i % 50,
                order_type=OrderType.LIMIT if limit else OrderType.MARKET,
                limit_price=(100.0 + 10 * SYMBOLS.index(sym)) if limit else None,
                strategy="momo" if i % 5 == 0 else "default",
            )
        )
    return out


def measure(
    fn: Callable[[OrderRequest], RiskDecision], batch: list[OrderRequest], n: int
) -> dict[str, float]:
    timer = time.perf_counter_ns
    samples = [0] * n
    m = len(batch)
    for i in range(2_000):  # warm-up
        fn(batch[i % m])
    gc.disable()
    try:
        start = timer()
        for i in range(n):
            o = batch[i % m]
            t0 = timer()
            fn(o)
            samples[i] = timer() - t0
        wall = (timer() - start) / 1e9
    finally:
        gc.enable()
    samples.sort()
    return {
        "p50_us": samples[n // 2] / 1000,
        "p99_us": samples[int(n * 0.99)] / 1000,
        "mean_us": statistics.fmean(samples) / 1000,
        "per_s": n / wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200_000)
    args = parser.parse_args()
    engine = build_engine()
    batch = orders()
    decisions = [engine.check(o) for o in batch]
    allowed = sum(d.allowed for d in decisions)
    enabled = [c.name for c in engine.checks]
    base = measure(Baseline().check, batch, args.n)
    risk = measure(engine.check, batch, args.n)
    print(f"risk engine check(): {len(enabled)} checks enabled: {', '.join(enabled)}")
    print(f"orders: {len(batch)} distinct, {allowed} allowed / {len(batch) - allowed} denied")
    print(f"{'':<22}{'p50 us':>10}{'p99 us':>10}{'mean us':>10}{'checks/s':>14}")
    for name, r in (("baseline (no-op call)", base), ("RiskEngine.check", risk)):
        print(
            f"{name:<22}{r['p50_us']:>10.2f}{r['p99_us']:>10.2f}{r['mean_us']:>10.2f}"
            f"{r['per_s']:>14,.0f}"
        )
    record(
        "risk check, all checks (in-process)",
        risk["p50_us"] / 1000,
        risk["p99_us"] / 1000,
        risk["per_s"],
        unit="checks/s",
        base=(base["p50_us"] / 1000, base["p99_us"] / 1000, base["per_s"]),
    )
    print(
        f"ratio engine/baseline: p50 {risk['p50_us'] / base['p50_us']:.1f}x, "
        f"p99 {risk['p99_us'] / base['p99_us']:.1f}x; "
        f"target p99 <= 50 us: {'OK' if risk['p99_us'] <= 50 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
