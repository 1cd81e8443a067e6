"""The pre-trade risk engine: every enabled check, in order, first denial wins.

It reads the account's one book (``app/portfolio/book.py``: positions, cash, working
orders, running totals) and keeps only what is its own: the kill switch, the breaker,
order-rate and duplicate windows, volatility and the daily loss latch. Single-threaded
by design (it lives on the execution engine's event loop): the hot path is plain
attribute reads, so a full check costs microseconds and never touches the network,
the disk or pydantic.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from math import log as _ln
from typing import Any, Literal

from app.models.occ import expiry_date, is_occ
from app.models.orders import OrderRequest
from app.observability.metrics import RISK_CHECK_LATENCY, RISK_DENIALS
from app.options.chain import OptionQuote
from app.portfolio.book import SIGN, AccountBook
from app.risk.breaker import CircuitBreaker
from app.risk.checks import (
    BuyingPowerCheck,
    Check,
    CircuitBreakerCheck,
    ConcentrationCheck,
    Ctx,
    DailyLossCheck,
    DuplicateCheck,
    KillSwitchCheck,
    LeverageCheck,
    MarketHoursCheck,
    MaxOpenPositionsCheck,
    MinBalanceCheck,
    OrderNotionalCheck,
    PositionSizeCheck,
    PriceCollarCheck,
    QuantityCheck,
    RateLimitCheck,
    ReferencePriceCheck,
    RiskDecision,
    SectorConcentrationCheck,
    VolatilityCheck,
)
from app.risk.checks.base import SHARE_ONLY
from app.risk.checks.option_order import OptionOrder, QuoteOf, no_quote
from app.risk.checks.options import OPTION_CHECKS, OptionBuyingPowerCheck
from app.risk.killswitch import KillState, KillSwitch
from app.risk.limits import RiskLimits
from app.risk.state import RiskState, SymbolRisk, Volatility
from app.sessions import SessionTable, day_span, trading_day

log = logging.getLogger(__name__)


# the checks one limits section configures, in ORDER after the system ones: (section,
# check class, whether its limits may differ per strategy)
SECTION_CHECKS: tuple[tuple[str, Any, bool], ...] = (
    ("daily_loss", DailyLossCheck, False),
    ("min_balance", MinBalanceCheck, False),
    ("leverage", LeverageCheck, False),
    ("max_open_positions", MaxOpenPositionsCheck, False),
    ("concentration", ConcentrationCheck, False),
    ("sector_concentration", SectorConcentrationCheck, False),
    ("position_size", PositionSizeCheck, True),
    ("order_notional", OrderNotionalCheck, True),
    ("price_collar", PriceCollarCheck, False),
    ("quantity", QuantityCheck, True),
    ("volatility", VolatilityCheck, False),
    ("duplicate", DuplicateCheck, False),
)

Clock = Callable[[], float]


class RiskEngine:
    """Pre-trade checks plus the state they read.

    ``clock`` returns Unix seconds (inject one in tests). ``market_hours`` is the
    fallback for ``market_hours.mode`` when the limits file leaves it unset (pass
    ``settings.effective_market_hours``). ``book``: the account's book, which the
    execution engine writes and these checks read (a fresh one by default).
    """

    def __init__(
        self,
        limits: RiskLimits | None = None,
        clock: Clock = time.time,
        market_hours: Literal["exchange", "always"] = "exchange",
        book: AccountBook | None = None,
    ) -> None:
        self.limits = limits = limits if limits is not None else RiskLimits()
        self.clock = clock
        now = clock()
        self.book = book if book is not None else AccountBook(account="risk", cash=0.0)
        self.state = RiskState()
        self.kill_switch = KillSwitch(limits.kill_switch.initial_state, now)
        cb = limits.circuit_breaker
        self.breaker = CircuitBreaker(cb) if cb is not None and cb.enabled else None
        sectors = limits.sector_concentration
        self._sector_map = sectors.sectors if sectors is not None else {}
        self._default_sector = sectors.default_sector if sectors is not None else "Other"
        vol = limits.section("volatility")
        self._vol_window = vol.window if vol is not None else 0
        self._vol_gap = vol.max_gap_seconds if vol is not None else 0.0
        dup = limits.section("duplicate")
        self._dup_window = dup.window_seconds if dup is not None else 0.0
        mh = limits.section("market_hours")
        self.market_hours_mode = (mh.mode or market_hours) if mh is not None else "always"
        self.sessions: SessionTable | None = None
        if mh is not None and self.market_hours_mode == "exchange":
            today = datetime.fromtimestamp(now, UTC).date()
            self.sessions = SessionTable.build(
                mh.calendar, today - timedelta(days=7), today + timedelta(days=365 * mh.years_ahead)
            )
        dl = limits.section("daily_loss")
        self._max_loss: float | None = dl.max_loss if dl is not None else None
        if dl is not None and {"reset_time", "timezone"} & dl.model_fields_set:
            log.warning(
                "risk: daily_loss.reset_time and .timezone are ignored: the day rolls with "
                "market_hours.calendar's trading day"
            )
        # the account's calendar: its trading day is the one "today" of the book, the
        # checks, the API and the metrics (app/sessions.py: pre- and after-market
        # included; a day without a session belongs to the next one)
        self.calendar = mh.calendar if mh is not None else "XNYS"
        span = day_span(now, self.calendar)
        self.day_started_at, self.next_reset = span.start, span.end
        # called when a new trading day starts (after the book rolled)
        self.on_day_roll: Callable[[float], None] | None = None
        self.book.day_of = self.trading_day  # one trading day for the book and the checks
        sectors_of = self._sector_map.get
        self.book.sector_of = lambda symbol: sectors_of(symbol, self._default_sector)
        # the latest quote and greeks of an option contract (the engine's chain cache)
        self.option_quote: QuoteOf = no_quote
        self.checks = self._build_checks()
        self._all = tuple(c.evaluate for c in self.checks)
        self._for_reducing = tuple(c.evaluate for c in self.checks if not c.new_risk_only)
        # an option contract: no price collar (its last trade says little); a spread: no
        # check that prices it as shares
        self._for_option = tuple(
            c.evaluate for c in self.checks if c.name not in ("price_collar", "buying_power")
        )
        spread = [c for c in self.checks if c.name not in SHARE_ONLY]
        self._for_spread = tuple(c.evaluate for c in spread)
        self._for_spread_reducing = tuple(c.evaluate for c in spread if not c.new_risk_only)
        self._is_option: dict[str, bool] = {}
        self._denials = {c.name: RISK_DENIALS.labels(check=c.name) for c in self.checks}
        self._observe = RISK_CHECK_LATENCY.observe

    # -- construction ---------------------------------------------------------------
    def _build_checks(self) -> list[Check]:
        """The enabled checks, in ``ORDER``: system, account, portfolio, order/strategy."""
        lim = self.limits
        checks: list[Check] = [KillSwitchCheck(self.kill_switch)]
        if self.breaker is not None:
            assert lim.circuit_breaker is not None
            checks.append(CircuitBreakerCheck(self.breaker, lim.circuit_breaker.block_reducing))
        if self.sessions is not None:
            checks.append(MarketHoursCheck(self.sessions))
        rl = lim.section("rate_limit")
        if rl is not None and (rl.global_ is not None or rl.per_symbol is not None):
            checks.append(RateLimitCheck(rl.global_, rl.per_symbol))
        checks.append(ReferencePriceCheck())
        if lim.section("buying_power") is not None:
            checks.append(BuyingPowerCheck())
        for name, cls, per_strategy in SECTION_CHECKS:
            if per_strategy:
                default, per = self._per_strategy(name)
                if default is not None or any(v is not None for v in per.values()):
                    checks.append(cls(default, per))
            elif (section := lim.section(name)) is not None:
                checks.append(cls(section))
        if (options := lim.section("options")) is not None:
            quote_of = self.quote_option  # late-bound: the engine sets ``option_quote``
            kinds = OPTION_CHECKS
            if lim.section("buying_power") is not None:
                kinds = (OptionBuyingPowerCheck, *kinds)
            checks.extend(cls(options, quote_of, expiry_date) for cls in kinds)
        return checks

    def quote_option(self, symbol: str) -> OptionQuote | None:
        return self.option_quote(symbol)

    def _per_strategy(self, name: str) -> tuple[Any, dict[str, Any]]:
        lim = self.limits
        return lim.section(name), lim.overridden(name)

    def _roll_day(self, now: float) -> None:
        """A new trading day: new loss budget, DAY orders gone. Rare, so may be slow."""
        span = day_span(now, self.calendar)
        self.day_started_at, self.next_reset = span.start, span.end
        self.book.roll(now)  # DAY orders gone, the day starts from this equity
        self.state.daily_loss_hit = False
        if self.on_day_roll is not None:
            self.on_day_roll(now)
        log.info("risk: trading day rolled over; day start equity %s", self.book.day_start_equity)

    def trading_day(self, ts: float) -> str:
        """The trading day ``ts`` belongs to on the account's calendar, as an ISO date."""
        return trading_day(ts, self.calendar).isoformat()

    # -- the hot path ---------------------------------------------------------------
    def check(self, order: OrderRequest, price: float | None = None) -> RiskDecision:
        """Run every enabled check in order; the first denial is the answer.

        ``price`` is the caller's reference price (e.g. the quote it sized with); else
        the limit/stop price, else the last quote.
        """
        t0 = time.perf_counter()
        now = self.clock()
        if now >= self.next_reset:
            self._roll_day(now)
        book = self.book
        sym = book.holdings.get(order.symbol) or book.holding(order.symbol)
        srisk = self.state.symbols.get(order.symbol) or self._symbol(order.symbol)
        sign = SIGN[order.intent]
        if price is None:
            price = order.limit_price or order.stop_price or sym.last
        evaluators = self._all
        if order.legs:
            reducing = order.reduces and all(
                book.holding(leg.symbol).reduces(leg.intent, order.quantity * leg.ratio)
                for leg in order.legs
            )
            evaluators = self._for_spread_reducing if reducing else self._for_spread
        else:
            reducing = sym.reduces(order.intent, order.quantity)
            if reducing:
                evaluators = self._for_reducing
            elif self._option(order.symbol):
                evaluators = self._for_option
        ctx = Ctx(order, now, book, sym, self.state, srisk, sign, reducing, price)
        if order.legs or self._option(order.symbol):
            ctx.option = OptionOrder.of(order, self.option_quote, price)
        for evaluate in evaluators:
            decision = evaluate(ctx)
            if decision is not None:
                self._denials[decision.check or ""].inc()
                self._observe(time.perf_counter() - t0)
                return decision
        decision = RiskDecision(True, detail={"reducing": reducing, "price": price})
        self._observe(time.perf_counter() - t0)
        return decision

    def _option(self, symbol: str) -> bool:
        hit = self._is_option.get(symbol)
        if hit is None:
            hit = self._is_option[symbol] = is_occ(symbol)
        return hit

    # -- state hooks (called by the execution engine) -------------------------------
    def _symbol(self, symbol: str) -> SymbolRisk:
        srisk = SymbolRisk(vol=Volatility(self._vol_window) if self._vol_window else None)
        self.state.symbols[symbol] = srisk
        return srisk

    def on_quote(self, symbol: str, last: float, ts: float) -> None:
        """A trade price, after the book was marked with it: volatility, loss velocity. O(1)."""
        if last <= 0.0:
            return
        srisk = self.state.symbols.get(symbol) or self._symbol(symbol)
        prev, prev_ts = srisk.last, srisk.last_ts
        if srisk.vol is not None and prev is not None and ts >= prev_ts:
            dt = ts - prev_ts
            if dt <= self._vol_gap and last != prev:
                r = _ln(last / prev)
                srisk.vol.add(r * r, dt)
            elif dt <= self._vol_gap:
                srisk.vol.add(0.0, dt)
        srisk.last, srisk.last_ts = last, ts
        held = self.book.holdings.get(symbol)
        if held is not None and held.qty:
            self.marked(ts)

    def undo_submitted(self, order: OrderRequest, ts: float) -> None:
        """The order counted by ``on_order_submitted(order, ts)`` was never acknowledged
        (its write failed): forget it, so a retry of the same alert is not a duplicate and
        does not count twice against rate windows. (The engine releases it from the book.)"""
        key = (order.symbol, order.intent, order.quantity)
        if self.state.recent.get(key) == ts:
            del self.state.recent[key]
        srisk = self.state.symbols.get(order.symbol)
        for window in (self.state.submits, srisk.submits if srisk is not None else None):
            if window and window[-1] == ts:
                window.pop()

    def on_order_submitted(self, order: OrderRequest, ts: float | None = None) -> None:
        """An allowed order went to the broker: rate windows, duplicates, the breaker's
        count. (Its working quantity is the book's: ``AccountBook.order_submitted``.)"""
        now = self.clock() if ts is None else ts
        state = self.state
        srisk = state.symbols.get(order.symbol) or self._symbol(order.symbol)
        state.submits.append(now)
        srisk.submits.append(now)
        if self._dup_window:
            recent = state.recent
            if len(recent) > 1024:
                horizon = now - self._dup_window
                for key in [k for k, t in recent.items() if t <= horizon]:
                    del recent[key]
            recent[(order.symbol, order.intent, order.quantity)] = now
        if self.breaker is not None:
            self.breaker.order_submitted(now)

    def marked(self, now: float) -> None:
        """The book's equity moved with the market (a quote, a fill): feed loss velocity,
        latch the daily loss."""
        equity = self.book.equity
        if self.breaker is not None:
            self.breaker.equity(equity, now)
        self._latch_loss(equity)

    def rebased(self) -> None:
        """The book's equity moved by a snapshot (the broker's book adopted, a reload),
        not the market: no loss-velocity sample."""
        equity = self.book.equity
        if self.breaker is not None:
            self.breaker.rebase_equity(equity, self.clock())
        self._latch_loss(equity)

    def _latch_loss(self, equity: float) -> None:
        start = self.book.day_start_equity
        if self._max_loss is not None and start is not None and equity - start <= -self._max_loss:
            self.state.daily_loss_hit = True

    def on_broker_result(self, ok: bool, ts: float | None = None) -> None:
        """Every broker call's outcome (order placement at least): feeds the breaker."""
        if self.breaker is not None:
            self.breaker.broker_result(ok, self.clock() if ts is None else ts)

    def set_kill_switch(self, state: KillState | str, reason: str | None = None) -> KillState:
        """Operator control. Accepts "ACTIVE|REDUCING|HALTED" (any case); returns the new state."""
        old = self.kill_switch.set(state, self.clock(), reason)
        new = self.kill_switch.state
        log.warning("risk: kill switch %s -> %s (%s)", old.value, new.value, reason or "")
        return new

    def reset_breaker(self) -> None:
        """Operator override: close the circuit breaker now."""
        if self.breaker is not None:
            self.breaker.reset()

    # -- read side --------------------------------------------------------------------
    @property
    def daily_pnl(self) -> float | None:
        start = self.book.day_start_equity
        return None if start is None else self.book.equity - start

    def snapshot(self) -> dict[str, Any]:
        """State and limits for ``GET /api/v1/risk`` (JSON-ready)."""
        now = self.clock()
        if now >= self.next_reset:
            self._roll_day(now)
        book = self.book
        dl = self.limits.section("daily_loss")
        return {
            "time": now,
            "kill_switch": self.kill_switch.snapshot(),
            "circuit_breaker": self.breaker.snapshot(now) if self.breaker else None,
            "market_hours": {
                "mode": self.market_hours_mode,
                "open": self.sessions.is_open(now) if self.sessions else True,
            },
            "daily": {
                "pnl": self.daily_pnl,
                "loss_limit": dl.max_loss if dl is not None else None,
                "day_started_at": self.day_started_at,
                "next_reset_at": self.next_reset,
                "day_start_equity": book.day_start_equity,
                "loss_limit_hit": self.state.daily_loss_hit,
            },
            "account": {
                "cash": book.cash,
                "equity": book.equity,
                "buying_power": book.buying_power,
                "gross_exposure": book.gross,
                "open_positions": book.open_positions,
                "working_orders": len(book.working),
            },
            "checks": [
                {"name": c.name, "layer": c.layer, "new_risk_only": c.new_risk_only}
                | {"status": c.describe(book, self.state, now)}
                for c in self.checks
            ],
            "limits": self.limits.model_dump(mode="json", by_alias=True),
        }
