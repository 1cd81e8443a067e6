"""One account's book of record: what it holds, what it is about to hold, and what it made.

FIFO lots per symbol and per strategy (one matcher, ``app/portfolio/fifo.py``), cash net
of commissions, working orders and the exposure they may add, realised and unrealised
P&L, the trading day and the equity it started from. The execution engine and the
reconciler change it through the methods below; the risk checks read it (so there is
no second book to keep in step). Totals the checks read on every order (net and gross
market value, per-sector gross, open positions, the notional working orders may open)
are running sums, updated in O(1) as fills, quotes and orders arrive, and recomputed
exactly at each day roll so float rounding cannot build up.

Notional, market value and P&L are ``quantity x price x multiplier`` (100 for a
standard option contract, a future's point value, 1 for shares and coins). Pure and
synchronous: no I/O, no clock of its own.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from app.models.orders import Fill, Intent, OrderRequest, TimeInForce
from app.models.portfolio import AccountState, Position, StrategyPosition
from app.portfolio.fifo import EPS, Lots, match

EXCHANGE_TZ = ZoneInfo("America/New_York")
# the strategy of what the broker's book holds and no fill of ours explains (a manual
# trade, a book adopted at start-up): the one alerts without a ``strategy`` have, so a
# plain ``exit`` closes it, a named strategy's does not (``flatten`` does too); it keeps
# the per-strategy parts summing to the account's position
EXTERNAL_STRATEGY = "default"
# orders of the flatten command and the kill switch: their fills close every strategy's
# part of the symbol
FLATTEN_STRATEGY = "flatten"
SIGN: dict[Intent, int] = {
    Intent.BUY: 1,
    Intent.BUY_TO_COVER: 1,
    Intent.SELL: -1,
    Intent.SELL_SHORT: -1,
}


def leg_key(order_id: str, symbol: str) -> str:
    """The working-order key of one leg of a spread order."""
    return f"{order_id}#{symbol}"


def calendar_day(ts: float) -> str:
    """The New York calendar day of a timestamp: the day of a book used on its own (the
    engine gives its book the trading-day function of the account's calendar)."""
    return datetime.fromtimestamp(ts, EXCHANGE_TZ).date().isoformat()


def _unit(_symbol: str) -> float:
    return 1.0


def _other(_symbol: str) -> str:
    return "Other"


class Part:
    """FIFO lots of one symbol (the account's, or one strategy's share of it)."""

    __slots__ = ("_stored", "lots", "qty", "realized")

    def __init__(self, lots: Lots | None = None, realized: float = 0.0) -> None:
        self.lots: Lots = lots if lots is not None else deque()
        self.qty = sum(lot[0] for lot in self.lots)
        self.realized = realized  # in price points x quantity (times the multiplier: P&L)
        # the stored form, kept until the next fill: the book is written after every fill
        # batch, and a position built from many fills has as many lots
        self._stored: dict[str, Any] | None = None

    @property
    def avg_price(self) -> float:
        return sum(q * p for q, p in self.lots) / self.qty if abs(self.qty) > EPS else 0.0

    def apply(self, signed: float, price: float) -> float:
        """Add a fill; the points x quantity it realised (FIFO against opposite lots)."""
        self._stored = None
        realized, remaining = match(self.lots, signed, price)
        if abs(remaining) > EPS:
            self.lots.append([remaining, price])
        self.qty = _clean(self.qty + signed)
        if not self.lots:
            self.qty = 0.0
        self.realized += realized
        return realized

    def to_dict(self) -> dict[str, Any]:
        """The stored form (shared until the next fill: callers must not change it)."""
        if self._stored is None:
            self._stored = {"lots": [[q, p] for q, p in self.lots], "realized": self.realized}
        return self._stored

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Part:
        return cls(deque([float(q), float(p)] for q, p in data["lots"]), float(data["realized"]))


class Holding:
    """One symbol in the book: its lots, its mark and its working orders' quantities."""

    __slots__ = (
        "last",
        "last_ts",
        "multiplier",
        "mv",
        "part",
        "pending_buy",
        "pending_sell",
        "sector",
        "symbol",
    )

    def __init__(self, symbol: str, multiplier: float, sector: str) -> None:
        self.symbol = symbol
        self.multiplier = multiplier
        self.sector = sector
        self.part = Part()
        self.last: float | None = None
        self.last_ts = 0.0
        self.mv = 0.0  # qty x mark x multiplier, as counted in the book's totals
        self.pending_buy = 0.0  # working buy-side quantity (BUY, BUY_TO_COVER)
        self.pending_sell = 0.0  # working sell-side quantity (SELL, SELL_SHORT)

    @property
    def qty(self) -> float:
        return self.part.qty

    @property
    def avg_price(self) -> float:
        return self.part.avg_price

    @property
    def mark(self) -> float:
        return self.last if self.last is not None else self.part.avg_price

    @property
    def realized_pnl(self) -> float:
        return self.part.realized * self.multiplier

    def reduces(self, intent: Intent, quantity: float) -> bool:
        """Would an order of ``quantity`` only reduce this position (working orders on the
        same side counted)? The one definition, for risk and for working exposure."""
        if intent is Intent.SELL:
            return self.qty > 0 and quantity + self.pending_sell <= self.qty + EPS
        if intent is Intent.BUY_TO_COVER:
            return self.qty < 0 and quantity + self.pending_buy <= -self.qty + EPS
        return False


@dataclass(slots=True, eq=False)
class WorkingOrder:
    """An order sent but not finished: it may still add exposure, so checks count it."""

    symbol: str
    sign: int
    remaining: float
    price: float  # reference price at submit: prices its opening notional
    opening: bool
    day: bool  # DAY orders die at the close: dropped at the day roll


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """What a fill on one symbol (of one order) can change: enough to undo it exactly."""

    cash: float
    day: str
    realized_today: float
    commissions_today: float
    day_start_equity: float | None
    symbol: str
    part: dict[str, Any] | None
    last: float | None
    strategies: dict[str, dict[str, Any]]
    order_id: str
    working: WorkingOrder | None  # a copy of the order's working state
    pending: tuple[float, float]  # the symbol's working buy and sell quantities


@dataclass
class AccountBook:
    account: str
    cash: float
    day: str = ""
    realized_today: float = 0.0
    commissions_today: float = 0.0
    day_start_equity: float | None = None
    # the trading day of a timestamp (the engine passes the account's calendar's)
    day_of: Callable[[float], str] = field(default=calendar_day, repr=False, compare=False)
    multiplier_of: Callable[[str], float] = field(default=_unit, repr=False, compare=False)
    sector_of: Callable[[str], str] = field(default=_other, repr=False, compare=False)
    holdings: dict[str, Holding] = field(default_factory=dict)
    # each strategy's share of each symbol, FIFO of its own fills; they sum to the holding
    strategies: dict[tuple[str, str], Part] = field(default_factory=dict)
    working: dict[str, WorkingOrder] = field(default_factory=dict)
    # running totals (see the module docstring)
    net_mv: float = 0.0
    gross: float = 0.0
    open_positions: int = 0
    pending_new: int = 0  # flat symbols with working orders: positions about to open
    pending_open_notional: float = 0.0
    sector_gross: dict[str, float] = field(default_factory=dict)

    # -- symbols and totals -------------------------------------------------------
    def holding(self, symbol: str) -> Holding:
        h = self.holdings.get(symbol)
        if h is None:
            h = Holding(symbol, self.multiplier_of(symbol), self.sector_of(symbol))
            self.holdings[symbol] = h
        return h

    def _detach(self, h: Holding) -> None:
        """Take the holding out of the totals (before changing it)."""
        if h.qty:
            self.net_mv -= h.mv
            self.gross -= abs(h.mv)
            self.sector_gross[h.sector] = self.sector_gross.get(h.sector, 0.0) - abs(h.mv)
            self.open_positions -= 1
        elif h.pending_buy or h.pending_sell:
            self.pending_new -= 1

    def _attach(self, h: Holding) -> None:
        """Put the holding back into the totals (after changing it)."""
        if h.qty:
            h.mv = h.qty * h.mark * h.multiplier
            self.net_mv += h.mv
            self.gross += abs(h.mv)
            self.sector_gross[h.sector] = self.sector_gross.get(h.sector, 0.0) + abs(h.mv)
            self.open_positions += 1
        else:
            h.mv = 0.0
            if h.pending_buy or h.pending_sell:
                self.pending_new += 1

    def recompute(self) -> None:
        """Every running total from scratch (load, day roll): exact, off the hot path."""
        self.net_mv = self.gross = self.pending_open_notional = 0.0
        self.open_positions = self.pending_new = 0
        self.sector_gross = {}
        for h in self.holdings.values():
            self._attach(h)
        for w in self.working.values():
            if w.opening:
                self.pending_open_notional += (
                    w.remaining * w.price * self.holding(w.symbol).multiplier
                )

    # -- fills ---------------------------------------------------------------------
    def apply_fill(self, fill: Fill, order_id: str | None = None) -> float:
        """Book one execution; returns the P&L it realised (before commission).
        ``order_id``: the working order it fills (its remaining quantity shrinks)."""
        self.roll(fill.time)
        h = self.holding(fill.symbol)
        signed = fill.quantity * SIGN[fill.intent]
        self._detach(h)
        if order_id is not None:
            self._fill_working(h, order_id, fill.quantity)
        realized = h.part.apply(signed, fill.price) * h.multiplier
        if h.last is None:
            h.last, h.last_ts = fill.price, fill.time
        self._attach(h)
        self.cash -= signed * fill.price * h.multiplier + fill.commission
        self.realized_today += realized - fill.commission
        self.commissions_today += fill.commission
        self._attribute(fill.strategy, fill.symbol, signed, fill.price)
        return realized

    def working_key(self, order_id: str, symbol: str) -> str:
        """The key a fill of ``symbol`` reduces: a spread's leg, else the order."""
        key = leg_key(order_id, symbol)
        return key if key in self.working else order_id

    def _fill_working(self, h: Holding, order_id: str, quantity: float) -> None:
        order_id = self.working_key(order_id, h.symbol)
        w = self.working.get(order_id)
        if w is None:
            return
        done = min(quantity, w.remaining)
        w.remaining -= done
        if w.opening:
            self.pending_open_notional -= done * w.price * h.multiplier
        if w.sign > 0:
            h.pending_buy = max(0.0, h.pending_buy - done)
        else:
            h.pending_sell = max(0.0, h.pending_sell - done)
        if w.remaining <= EPS:
            del self.working[order_id]

    def _attribute(self, strategy: str, symbol: str, signed: float, price: float) -> None:
        """Book ``signed`` to ``strategy``'s share of the symbol; a flatten's fill closes
        the other strategies' shares first (each its own realised P&L), by name."""
        if strategy == FLATTEN_STRATEGY:
            for key in sorted(k for k in self.strategies if k[1] == symbol):
                part = self.strategies[key]
                if abs(signed) <= EPS or not part.qty or (part.qty > 0) == (signed > 0):
                    continue
                closing = min(abs(signed), abs(part.qty)) * (1 if signed > 0 else -1)
                part.apply(closing, price)
                signed -= closing
        if abs(signed) > EPS:
            self.strategies.setdefault((strategy, symbol), Part()).apply(signed, price)

    def checkpoint(self, symbol: str, order_id: str = "") -> Checkpoint:
        """Before a fill on ``symbol`` of ``order_id``: ``restore`` undoes it."""
        h = self.holdings.get(symbol)
        order_id = self.working_key(order_id, symbol)
        w = self.working.get(order_id)
        return Checkpoint(
            self.cash,
            self.day,
            self.realized_today,
            self.commissions_today,
            self.day_start_equity,
            symbol,
            h.part.to_dict() if h is not None else None,
            h.last if h is not None else None,
            {k[0]: p.to_dict() for k, p in self.strategies.items() if k[1] == symbol},
            order_id,
            replace(w) if w is not None else None,
            (h.pending_buy, h.pending_sell) if h is not None else (0.0, 0.0),
        )

    def restore(self, cp: Checkpoint) -> None:
        self.cash, self.day = cp.cash, cp.day
        self.realized_today, self.commissions_today = cp.realized_today, cp.commissions_today
        self.day_start_equity = cp.day_start_equity
        h = self.holding(cp.symbol)
        self._detach(h)
        h.part = Part.from_dict(cp.part) if cp.part is not None else Part()
        h.last = cp.last
        if cp.working is not None:  # the order as it was (the fill may have finished it)
            now = self.working.get(cp.order_id)
            if now is not None and now.opening:
                self.pending_open_notional -= now.remaining * now.price * h.multiplier
            if cp.working.opening:
                self.pending_open_notional += cp.working.remaining * cp.working.price * h.multiplier
            self.working[cp.order_id] = replace(cp.working)
        h.pending_buy, h.pending_sell = cp.pending
        self._attach(h)
        for key in [k for k in self.strategies if k[1] == cp.symbol]:
            del self.strategies[key]
        for strategy, data in cp.strategies.items():
            self.strategies[(strategy, cp.symbol)] = Part.from_dict(data)

    # -- working orders ------------------------------------------------------------
    def order_submitted(self, order: OrderRequest, price: float | None) -> None:
        """An allowed order is on its way: its quantity counts as working at once (a
        spread's per leg, under ``{order id}#{leg symbol}``)."""
        if order.legs:
            for leg in order.legs:
                self.order_submitted(
                    order.model_copy(
                        update={
                            "client_order_id": leg_key(order.client_order_id, leg.symbol),
                            "symbol": leg.symbol,
                            "intent": leg.intent,
                            "quantity": order.quantity * leg.ratio,
                            "legs": (),
                            "limit_price": None,
                        }
                    ),
                    0.0,  # premium is priced by the option checks, not as notional
                )
            return
        h = self.holding(order.symbol)
        self._detach(h)
        sign = SIGN[order.intent]
        opening = not h.reduces(order.intent, order.quantity)
        ref = order.limit_price or order.stop_price or price or h.last or h.avg_price or 0.0
        self.working[order.client_order_id] = WorkingOrder(
            order.symbol,
            sign,
            float(order.quantity),
            ref,
            opening,
            order.time_in_force is TimeInForce.DAY,
        )
        if sign > 0:
            h.pending_buy += order.quantity
        else:
            h.pending_sell += order.quantity
        if opening:
            self.pending_open_notional += order.quantity * ref * h.multiplier
        self._attach(h)

    def order_done(self, order_id: str) -> None:
        """The order is terminal (filled, canceled, rejected, expired): release what is left."""
        w = self.working.pop(order_id, None)
        if w is None:
            prefix = order_id + "#"
            for key in [k for k in self.working if k.startswith(prefix)]:
                self.order_done(key)
            return
        h = self.holding(w.symbol)
        self._detach(h)
        if w.sign > 0:
            h.pending_buy = max(0.0, h.pending_buy - w.remaining)
        else:
            h.pending_sell = max(0.0, h.pending_sell - w.remaining)
        if w.opening:
            self.pending_open_notional -= w.remaining * w.price * h.multiplier
        self._attach(h)

    # -- marks, the day, the broker's book ---------------------------------------------
    def mark(self, symbol: str, last: float, ts: float) -> None:
        """A trade price: marks the position (O(1))."""
        h = self.holdings.get(symbol) or self.holding(symbol)
        h.last, h.last_ts = last, ts
        if h.qty:
            old = h.mv
            new = h.qty * last * h.multiplier
            h.mv = new
            self.net_mv += new - old
            d_gross = abs(new) - abs(old)
            self.gross += d_gross
            self.sector_gross[h.sector] = self.sector_gross.get(h.sector, 0.0) + d_gross

    def roll(self, ts: float) -> bool:
        """At the first event of a new trading day: daily figures reset, DAY orders gone,
        the day starts from the equity of that moment. True when it rolled."""
        day = self.day_of(ts)
        if day == self.day:
            return False
        if self.day:  # (a first day has no earlier orders to expire)
            for order_id in [k for k, w in self.working.items() if w.day]:
                self.order_done(order_id)
        self.day = day
        self.realized_today = 0.0
        self.commissions_today = 0.0
        self.recompute()
        self.day_start_equity = self.equity
        return True

    def set_position(self, symbol: str, quantity: float, avg_price: float) -> None:
        """Replace a symbol's lots with one lot (the broker's book at reconciliation);
        what no strategy's fills explain becomes the ``EXTERNAL_STRATEGY``'s share."""
        h = self.holding(symbol)
        self._detach(h)
        h.part = Part(deque([[quantity, avg_price]]) if quantity else deque(), h.part.realized)
        self._attach(h)
        attributed = sum(p.qty for k, p in self.strategies.items() if k[1] == symbol)
        if abs(quantity - attributed) > EPS:
            self._attribute(EXTERNAL_STRATEGY, symbol, quantity - attributed, avg_price)

    # -- reads -----------------------------------------------------------------------
    def position(self, symbol: str) -> float:
        h = self.holdings.get(symbol)
        return h.qty if h is not None else 0.0

    def strategy_position(self, strategy: str, symbol: str) -> float:
        part = self.strategies.get((strategy, symbol))
        return part.qty if part is not None else 0.0

    def strategy_parts(self, strategy: str) -> dict[str, float]:
        """Every symbol ``strategy`` holds (signed quantity)."""
        return {k[1]: p.qty for k, p in self.strategies.items() if k[0] == strategy and p.qty}

    @property
    def equity(self) -> float:
        return self.cash + self.net_mv

    @property
    def unrealized(self) -> float:
        return sum(
            (h.last - h.avg_price) * h.qty * h.multiplier
            for h in self.holdings.values()
            if h.qty and h.last is not None
        )

    @property
    def buying_power(self) -> float:
        """Reg-T style: twice equity less gross exposure."""
        return max(0.0, self.equity * 2 - self.gross)

    @property
    def daily_pnl(self) -> float:
        """Equity against the day's start (realised net of commissions plus open P&L)."""
        if self.day_start_equity is not None:
            return self.equity - self.day_start_equity
        return self.realized_today + self.unrealized

    def positions(self) -> list[Position]:
        """Open positions per symbol (the account's), each with its strategies' shares."""
        shares: dict[str, list[StrategyPosition]] = {}
        for (strategy, symbol), part in sorted(self.strategies.items()):
            if part.qty:
                mult = self.holding(symbol).multiplier
                shares.setdefault(symbol, []).append(
                    StrategyPosition(
                        strategy=strategy,
                        quantity=_shown(part.qty),
                        avg_price=round(part.avg_price, 6),
                        realized_pnl=round(part.realized * mult, 2),
                    )
                )
        return [
            Position(
                symbol=h.symbol,
                quantity=_shown(h.qty),
                avg_price=round(h.avg_price, 6),
                realized_pnl=round(h.realized_pnl, 2),
                last_price=h.last,
                multiplier=h.multiplier,
                strategies=shares.get(h.symbol, []),
            )
            for h in sorted(self.holdings.values(), key=lambda h: h.symbol)
            if h.qty
        ]

    def state(self) -> AccountState:
        return AccountState(
            account=self.account,
            cash=round(self.cash, 2),
            equity=round(self.equity, 2),
            buying_power=round(self.buying_power, 2),
            realized_pnl_today=round(self.realized_today, 2),
            unrealized_pnl=round(self.unrealized, 2),
            gross_exposure=round(self.gross, 2),
            open_positions=self.open_positions,
        )

    # -- storage ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """What is stored (the ledger's form: working orders are rebuilt from open orders)."""
        return {
            "account": self.account,
            "cash": self.cash,
            "day": self.day,
            "realized_today": self.realized_today,
            "commissions_today": self.commissions_today,
            "day_start_equity": self.day_start_equity,
            "books": [
                {"symbol": h.symbol, "last": h.last, **h.part.to_dict()}
                for h in self.holdings.values()
                if h.part.lots or h.part.realized
            ],
            "strategy_books": [
                {"strategy": k[0], "symbol": k[1], **p.to_dict()}
                for k, p in self.strategies.items()
            ],
        }

    def load(self, data: dict[str, Any]) -> None:
        """Take a stored book's figures (this book's wiring and working orders are kept)."""
        self.cash = float(data["cash"])
        self.day = data.get("day", "")
        self.realized_today = float(data.get("realized_today", 0.0))
        self.commissions_today = float(data.get("commissions_today", 0.0))
        self.day_start_equity = data.get("day_start_equity")
        for h in self.holdings.values():
            h.part = Part()
        for b in data.get("books", []):
            h = self.holding(b["symbol"])
            h.part = Part.from_dict(b)
            if h.last is None:
                h.last = b.get("last")
        self.strategies = {
            (s["strategy"], s["symbol"]): Part.from_dict(s) for s in data.get("strategy_books", [])
        }
        if "strategy_books" not in data:  # stored before strategies were kept
            for h in self.holdings.values():
                if h.qty:
                    self._attribute(EXTERNAL_STRATEGY, h.symbol, h.qty, h.avg_price)
        self.recompute()

    @classmethod
    def from_dict(cls, data: dict[str, Any], **wiring: Any) -> AccountBook:
        book = cls(account=data["account"], cash=float(data["cash"]), **wiring)
        book.load(data)
        return book


def _clean(value: float) -> float:
    """A quantity with the float noise of FIFO slicing removed (12 significant digits)."""
    return 0.0 if abs(value) <= EPS else round(value, 9)


def _shown(value: float) -> float | int:
    """Whole quantities as integers (shares, contracts), fractions as they are (coins)."""
    return int(value) if value == int(value) else value
