"""An option order as the option checks see it: its legs in contracts, each with the
latest quote and greeks of its contract, and the net price per unit (signed: + debit).
Built once per ``check()`` by the risk engine for option orders only."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from app.models.occ import OccSymbol, is_occ, parse_occ
from app.models.orders import Intent, OrderRequest
from app.options.chain import OptionQuote
from app.options.spreads import Leg, net_natural
from app.portfolio.book import AccountBook

CONTRACT = 100
QuoteOf = Callable[[str], OptionQuote | None]


@dataclass(frozen=True, slots=True)
class OptionLeg:
    contract: OccSymbol
    symbol: str
    intent: Intent
    contracts: float
    quote: OptionQuote | None

    @property
    def opens(self) -> bool:
        return not self.intent.reduces

    @property
    def sign(self) -> int:
        return self.intent.side.sign


@dataclass(frozen=True, slots=True)
class OptionOrder:
    """An order's option legs, in contracts (a single contract is one leg)."""

    underlying: str
    legs: tuple[OptionLeg, ...]
    units: float
    net_price: float | None  # per unit per share, signed: + debit

    @classmethod
    def of(cls, order: OrderRequest, quote_of: QuoteOf, price: float | None) -> OptionOrder | None:
        if order.legs:
            legs = tuple(
                OptionLeg(
                    parse_occ(leg.symbol),
                    leg.symbol,
                    leg.intent,
                    order.quantity * leg.ratio,
                    quote_of(leg.symbol),
                )
                for leg in order.legs
            )
            net = None
            if order.limit_price is not None:
                net = order.limit_price * (-1 if order.net == "credit" else 1)
            else:
                natural = net_natural(_priced(legs, order.quantity))
                net = natural
            return cls(legs[0].contract.underlying, legs, order.quantity, net)
        if not is_occ(order.symbol):
            return None
        contract = parse_occ(order.symbol)
        leg = OptionLeg(
            contract, order.symbol, order.intent, order.quantity, quote_of(order.symbol)
        )
        net = price * order.side.sign if price is not None else None
        return cls(contract.underlying, (leg,), order.quantity, net)

    def as_legs(self) -> list[Leg]:
        return _priced(self.legs, self.units)

    @property
    def opening(self) -> list[OptionLeg]:
        return [leg for leg in self.legs if leg.opens]


def _priced(legs: tuple[OptionLeg, ...], units: float) -> list[Leg]:
    return [
        Leg(
            leg.sign > 0,
            max(1, round(leg.contracts / units)) if units else 1,
            leg.contract.right,
            leg.contract.strike,
            leg.quote.bid if leg.quote else None,
            leg.quote.ask if leg.quote else None,
        )
        for leg in legs
    ]


def held_options(book: AccountBook, underlying: str) -> dict[str, float]:
    """The account's contracts on ``underlying`` (OCC symbol -> signed contracts)."""
    return {
        s: h.qty
        for s, h in book.holdings.items()
        if h.qty and is_occ(s) and parse_occ(s).underlying == underlying
    }


def no_quote(_symbol: str) -> OptionQuote | None:
    return None
