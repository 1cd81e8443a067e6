"""Property: whatever the sequence of orders, fills and prices, the engine keeps the book
inside its limits, and after the daily loss limit is hit only exits get through.

The test keeps its own model of the book (positions, cash, working orders) and checks
the engine's decisions against it, rather than trusting the engine's own state.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.models.orders import Intent, OrderRequest
from app.models.portfolio import AccountState
from app.risk import RiskEngine, parse_limits
from tests.support.risk import harness
from tests.unit.test_risk_checks import SECTIONS, T0, Clock

SYMBOLS = ("AAA", "BBB", "CCC", "DDD")
START_PRICES = (50.0, 80.0, 120.0, 20.0)
CASH = 20_000.0
MAX_SHARES = 300
MAX_POSITIONS = 2
MAX_LEVERAGE = 1.5
MAX_LOSS = 500.0
SIGN = {Intent.BUY: 1, Intent.BUY_TO_COVER: 1, Intent.SELL: -1, Intent.SELL_SHORT: -1}

LIMITS = dict.fromkeys(SECTIONS) | {
    "position_size": {"max_shares": MAX_SHARES, "max_notional": None},
    "max_open_positions": {"max_positions": MAX_POSITIONS},
    "leverage": {"max_leverage": MAX_LEVERAGE},
    "daily_loss": {"max_loss": MAX_LOSS},
}

quote = st.tuples(st.just("quote"), st.integers(0, 3), st.floats(-0.08, 0.08, allow_nan=False))
new_order = st.tuples(
    st.just("order"),
    st.integers(0, 3),
    st.sampled_from(list(Intent)),
    st.integers(1, 250),
    st.booleans(),  # fill at once, or leave working
)
fill = st.tuples(st.just("fill"), st.integers(0, 50), st.floats(0.1, 1.0))
cancel = st.tuples(st.just("cancel"), st.integers(0, 50))
actions = st.lists(st.one_of(quote, new_order, fill, cancel), min_size=20, max_size=100)


@dataclass
class Working:
    oid: str
    symbol: str
    intent: Intent
    remaining: int


@dataclass
class Model:
    cash: float = CASH
    last: dict[str, float] = field(
        default_factory=lambda: dict(zip(SYMBOLS, START_PRICES, strict=True))
    )
    pos: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SYMBOLS, 0))
    working: list[Working] = field(default_factory=list)
    loss_hit: bool = False

    def equity(self) -> float:
        return self.cash + sum(q * self.last[s] for s, q in self.pos.items())

    def gross(self) -> float:
        return sum(abs(q * self.last[s]) for s, q in self.pos.items())

    def pending(self, symbol: str, side: int) -> int:
        return sum(
            w.remaining for w in self.working if w.symbol == symbol and SIGN[w.intent] == side
        )

    def reduces(self, symbol: str, intent: Intent, qty: int) -> bool:
        p = self.pos[symbol]
        if intent is Intent.SELL:
            return p > 0 and qty + self.pending(symbol, -1) <= p
        if intent is Intent.BUY_TO_COVER:
            return p < 0 and qty + self.pending(symbol, 1) <= -p
        return False

    def apply_fill(self, symbol: str, intent: Intent, qty: int) -> None:
        self.pos[symbol] += SIGN[intent] * qty
        self.cash -= SIGN[intent] * qty * self.last[symbol]


def check_invariants(m: Model) -> None:
    for s, q in m.pos.items():
        assert abs(q) <= MAX_SHARES, (s, q)
    assert sum(1 for q in m.pos.values() if q) <= MAX_POSITIONS, m.pos
    if m.equity() - CASH <= -MAX_LOSS - 1e-6:
        m.loss_hit = True  # latched for the day, like the engine


_ids = itertools.count()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(actions)
def test_random_trading_never_breaches_limits(steps: list[tuple[Any, ...]]) -> None:
    clock = Clock(T0)
    engine = harness(RiskEngine(parse_limits(LIMITS), clock=clock))
    engine.update_account(AccountState(account="p", cash=CASH, equity=CASH, buying_power=CASH))
    m = Model()
    for s in SYMBOLS:
        engine.on_quote(s, m.last[s], clock())
    for step in steps:
        clock.advance(1)
        kind = step[0]
        if kind == "quote":
            _, i, move = step
            s = SYMBOLS[i]
            m.last[s] = round(m.last[s] * (1 + move), 4)
            engine.on_quote(s, m.last[s], clock())
        elif kind == "order":
            _, i, intent, qty, at_once = step
            s = SYMBOLS[i]
            o = OrderRequest(
                client_order_id=f"p{next(_ids)}", symbol=s, intent=intent, quantity=qty
            )
            reducing = m.reduces(s, intent, qty)
            idle = not m.working
            decision = engine.check(o)
            if not decision.allowed:
                continue
            if m.loss_hit:
                assert reducing, ("exposure-increasing order allowed after the daily loss", o)
            engine.on_order_submitted(o, clock())
            if at_once:
                engine.on_fill(s, intent, qty, m.last[s], clock(), order_id=o.client_order_id)
                m.apply_fill(s, intent, qty)
                if idle and not reducing:
                    assert m.gross() <= MAX_LEVERAGE * m.equity() * (1 + 1e-9), (m.pos, m.last)
            else:
                m.working.append(Working(o.client_order_id, s, intent, qty))
        elif kind == "fill" and m.working:
            _, k, frac = step
            w = m.working[k % len(m.working)]
            qty = max(1, int(w.remaining * frac))
            engine.on_fill(w.symbol, w.intent, qty, m.last[w.symbol], clock(), order_id=w.oid)
            m.apply_fill(w.symbol, w.intent, qty)
            w.remaining -= qty
            if w.remaining == 0:
                m.working.remove(w)
                engine.on_order_done(w.oid)
        elif kind == "cancel" and m.working:
            w = m.working.pop(step[1] % len(m.working))
            engine.on_order_done(w.oid)
        check_invariants(m)
        # The engine's view agrees with the model's.
        assert {s: engine.book.position(s) for s in SYMBOLS} == m.pos
        assert abs(engine.book.equity - m.equity()) < 1e-6 * max(1.0, abs(m.equity()))
