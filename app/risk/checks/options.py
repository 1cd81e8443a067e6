"""Option checks: what an option order may open, read from the book and the chain cache.

An option order (one OCC contract, or a spread's legs) is seen as
:class:`~app.risk.checks.option_order.OptionOrder`. Each check below is named and denies with a machine-readable reason;
orders that only close are never stopped by them (``new_risk_only``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from app.models.occ import OptionRight, is_occ, parse_occ
from app.models.orders import Intent
from app.options.spreads import worst_loss
from app.portfolio.book import AccountBook
from app.risk.checks.base import Check, Ctx, RiskDecision
from app.risk.checks.option_order import CONTRACT, OptionOrder, QuoteOf, held_options
from app.risk.limits import OptionLimits
from app.risk.state import RiskState


class OptionCheck(Check):
    """Base: reads ``c.option`` (set for option orders only) and this account's settings."""

    layer = "options"
    new_risk_only = True

    def __init__(
        self, cfg: OptionLimits, quote_of: QuoteOf, today: Callable[[float], date]
    ) -> None:
        self.cfg = cfg
        self.quote_of = quote_of
        self.today = today

    def evaluate(self, c: Ctx) -> RiskDecision | None:
        option = c.option
        return None if option is None else self.check(c, option)

    def check(self, c: Ctx, o: OptionOrder) -> RiskDecision | None:
        raise NotImplementedError

    def describe(self, book: AccountBook, state: RiskState, now: float) -> dict[str, Any]:
        return self.cfg.model_dump(exclude={"enabled"})


class NakedCallCheck(OptionCheck):
    """Calls sold to open must be covered: by calls bought in the same order, long calls
    held on the underlying, or 100 shares each."""

    name = "naked_call"

    def check(self, c: Ctx, o: OptionOrder) -> RiskDecision | None:
        if self.cfg.naked_calls:
            return None
        short = sum(
            leg.contracts
            for leg in o.legs
            if leg.intent is Intent.SELL_SHORT and leg.contract.right is OptionRight.CALL
        )
        if not short:
            return None
        bought = sum(
            leg.contracts
            for leg in o.legs
            if leg.intent is Intent.BUY and leg.contract.right is OptionRight.CALL
        )
        held = sum(
            q
            for s, q in held_options(c.book, o.underlying).items()
            if q > 0 and parse_occ(s).right is OptionRight.CALL
        )
        shares = max(0.0, c.book.position(o.underlying)) // CONTRACT
        cover = bought + held + shares
        if short <= cover:
            return None
        return self.deny(
            "naked_short_call",
            f"{short:g} {o.underlying} call(s) sold with cover for {cover:g} "
            "(naked short calls are off for this account)",
            short=short,
            covered=cover,
        )


class ShortPutCheck(OptionCheck):
    """Puts sold to open beyond the puts bought with them need the cash to buy the shares."""

    name = "short_put"

    def check(self, c: Ctx, o: OptionOrder) -> RiskDecision | None:
        if self.cfg.short_puts == "margin":
            return None
        sold = [
            leg
            for leg in o.legs
            if leg.intent is Intent.SELL_SHORT and leg.contract.right is OptionRight.PUT
        ]
        if not sold:
            return None
        bought = sum(
            leg.contracts
            for leg in o.legs
            if leg.intent is Intent.BUY and leg.contract.right is OptionRight.PUT
        )
        naked = sum(leg.contracts for leg in sold) - bought
        if naked <= 0:
            return None
        top = max(float(leg.contract.strike) for leg in sold)
        needed = naked * top * CONTRACT
        if needed <= c.book.cash:
            return None
        return self.deny(
            "not_cash_secured",
            f"{naked:g} short put(s) need ${needed:,.2f} cash to secure, cash ${c.book.cash:,.2f}",
            needed=needed,
            cash=c.book.cash,
        )


class ContractsCheck(OptionCheck):
    name = "option_contracts"

    def check(self, c: Ctx, o: OptionOrder) -> RiskDecision | None:
        limit = self.cfg.max_contracts_per_order
        total = sum(leg.contracts for leg in o.legs)
        if limit is None or total <= limit:
            return None
        return self.deny(
            "max_contracts",
            f"{total:g} contracts in one order (max {limit})",
            contracts=total,
            limit=limit,
        )


class PremiumCheck(OptionCheck):
    name = "option_premium"

    def check(self, c: Ctx, o: OptionOrder) -> RiskDecision | None:
        limit = self.cfg.max_premium_per_order
        if limit is None or o.net_price is None:
            return None
        premium = abs(o.net_price) * o.units * CONTRACT
        if premium <= limit:
            return None
        return self.deny(
            "max_premium",
            f"premium ${premium:,.2f} > ${limit:,.2f} per order",
            premium=premium,
            limit=limit,
        )


class MaxLossCheck(OptionCheck):
    """The position the order opens may lose at most ``max_loss_per_position`` at expiry
    (a spread: width minus credit, x contracts x 100); an unbounded loss never passes."""

    name = "option_max_loss"

    def check(self, c: Ctx, o: OptionOrder) -> RiskDecision | None:
        limit = self.cfg.max_loss_per_position
        if limit is None or o.net_price is None:
            return None
        per_share = worst_loss(o.as_legs(), o.net_price)
        loss = None if per_share is None else per_share * o.units * CONTRACT
        if loss is not None and loss <= limit:
            return None
        shown = "unbounded" if loss is None else f"${loss:,.2f}"
        return self.deny(
            "max_position_loss",
            f"worst case {shown} > ${limit:,.2f} per position",
            loss=loss,
            limit=limit,
        )


class DteCheck(OptionCheck):
    name = "option_dte"

    def check(self, c: Ctx, o: OptionOrder) -> RiskDecision | None:
        today = self.today(c.now)
        for leg in o.opening:
            dte = (leg.contract.expiry - today).days
            if dte < self.cfg.min_dte:
                what = "same-day expiry (0DTE)" if dte <= 0 else f"{dte} days to expiry"
                return self.deny(
                    "min_dte",
                    f"{leg.symbol}: {what}, minimum {self.cfg.min_dte}",
                    dte=dte,
                    limit=self.cfg.min_dte,
                )
            if self.cfg.max_dte is not None and dte > self.cfg.max_dte:
                return self.deny(
                    "max_dte",
                    f"{leg.symbol}: {dte} days to expiry, maximum {self.cfg.max_dte}",
                    dte=dte,
                    limit=self.cfg.max_dte,
                )
        return None


class SpreadWidthCheck(OptionCheck):
    """An illiquid contract (bid/ask far apart, or one-sided) is a denial naming the width."""

    name = "option_spread"

    def check(self, c: Ctx, o: OptionOrder) -> RiskDecision | None:
        limit = self.cfg.max_spread_pct
        if limit is None:
            return None
        for leg in o.opening:
            q = leg.quote
            if q is None:
                continue
            mid = q.mid
            if q.bid is None or q.ask is None or not mid or q.bid <= 0:
                return self.deny(
                    "no_market",
                    f"{leg.symbol}: no two-sided market (bid {q.bid}, ask {q.ask})",
                    bid=q.bid,
                    ask=q.ask,
                )
            pct = (q.ask - q.bid) / mid * 100
            if pct > limit:
                return self.deny(
                    "wide_spread",
                    f"{leg.symbol}: bid/ask {q.bid:.2f}/{q.ask:.2f} is {pct:.0f}% of the mid "
                    f"(max {limit:g}%)",
                    width=round(q.ask - q.bid, 4),
                    pct=pct,
                    limit_pct=limit,
                )
        return None


class DeltaCheck(OptionCheck):
    """Net delta in share-equivalents (shares + contracts x delta x 100), after the order:
    per underlying and for the account. Contracts without greeks count as 0."""

    name = "option_delta"

    def _delta(self, symbol: str, qty: float) -> float:
        if not is_occ(symbol):
            return qty
        q = self.quote_of(symbol)
        return qty * (q.delta or 0.0) * CONTRACT if q is not None else 0.0

    def check(self, c: Ctx, o: OptionOrder) -> RiskDecision | None:
        per, total = self.cfg.max_delta_per_underlying, self.cfg.max_delta
        if per is None and total is None:
            return None
        added = sum(
            leg.sign * leg.contracts * (leg.quote.delta or 0.0) * CONTRACT
            for leg in o.legs
            if leg.quote is not None
        )
        book = c.book
        underlying = (
            added
            + book.position(o.underlying)
            + sum(self._delta(s, q) for s, q in held_options(book, o.underlying).items())
        )
        if per is not None and abs(underlying) > per:
            return self.deny(
                "max_underlying_delta",
                f"{o.underlying} net delta would be {underlying:,.0f} shares (max {per:,.0f})",
                delta=underlying,
                limit=per,
            )
        if total is not None:
            account = added + sum(self._delta(s, h.qty) for s, h in book.holdings.items() if h.qty)
            if abs(account) > total:
                return self.deny(
                    "max_account_delta",
                    f"account net delta would be {account:,.0f} shares (max {total:,.0f})",
                    delta=account,
                    limit=total,
                )
        return None


class OptionBuyingPowerCheck(OptionCheck):
    """What an option order ties up, against buying power: a debit's premium; a credit
    position's worst case (a cash-secured put: strike less credit); a short call without a
    bound (only when ``naked_calls`` allows it): 20 % of its strike. Not share notional."""

    name = "option_buying_power"

    def check(self, c: Ctx, o: OptionOrder) -> RiskDecision | None:
        if o.net_price is None:
            return None
        if o.net_price > 0:
            per_share = o.net_price
        else:
            loss = worst_loss(o.as_legs(), o.net_price)
            if loss is None:
                loss = 0.2 * max(float(leg.contract.strike) for leg in o.legs)
            per_share = loss
        needed = per_share * o.units * CONTRACT + c.book.pending_open_notional
        if needed <= c.book.buying_power:
            return None
        return self.deny(
            "insufficient_buying_power",
            f"the option order needs ${needed:,.2f} (incl. working orders), "
            f"buying power ${c.book.buying_power:,.2f}",
            needed=needed,
            buying_power=c.book.buying_power,
        )


OPTION_CHECKS: tuple[type[OptionCheck], ...] = (
    NakedCallCheck,
    ShortPutCheck,
    ContractsCheck,
    PremiumCheck,
    MaxLossCheck,
    DteCheck,
    SpreadWidthCheck,
    DeltaCheck,
)
