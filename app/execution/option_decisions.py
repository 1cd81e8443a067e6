"""The deciding path's option half: chains read before the engine lock, orders planned
under it (``option_planner.py``), every failure a denial that names the contract.

The chain fetch is the one network call of an option alert; it happens before the lock
(through the short cache of ``app/options/chains.py``), so a slow feed holds up only its
own alert, never the account's other alerts or fills.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from app.execution.option_planner import OptionPlan, option_holdings, plan_option, plan_option_exit
from app.execution.planner import plan_in_book
from app.execution.sizing import SizingRule
from app.feeds.base import FeedError, NoOptionsError
from app.models.alerts import Alert, AlertAction, Decision
from app.models.occ import expiry_date, is_occ, parse_occ
from app.models.orders import OrderRequest
from app.options.chain import OptionQuote
from app.options.chains import OptionChains
from app.options.select import SelectedLeg, Selection, SelectionError, select
from app.options.spec import LegPlan, LegSide

if TYPE_CHECKING:
    from app.execution.engine import ExecutionEngine

EXIT_LEGS_FROM = 10  # order ids of an exit's option orders (after the shares' 0 and 1)


class OptionDenied(Exception):
    """An option alert that cannot be placed: ``reason`` is machine-readable."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(slots=True)
class Prepared:
    """What the alert needs from the chains, read before the lock."""

    selection: Selection | None = None  # buy/sell: the chosen contracts
    quotes: dict[str, OptionQuote] = field(default_factory=dict)  # exit: held contracts
    settlement: bool = False  # an expiry booking (``expiry.py``)


class OptionDecider:
    def __init__(self, engine: ExecutionEngine, chains: OptionChains | None) -> None:
        self.engine = engine
        self.chains = chains
        # expiry bookings by alert id, planned under the lock (``expiry.py``)
        self.settlements: dict[str, Callable[[], list[OrderRequest]]] = {}

    def today(self) -> date:
        return expiry_date(self.engine.clock())

    def wants(self, alert: Alert) -> bool:
        """An option alert, or an exit of a strategy that holds options on the ticker."""
        if alert.alert_id in self.settlements:
            return True
        if alert.is_option:
            return True
        return alert.action is AlertAction.EXIT and bool(
            option_holdings(self.engine.book, alert.strategy, alert.ticker)
        )

    async def prepare(self, alert: Alert, price: float | None) -> Prepared:
        """Chains and contracts for ``alert``; raises OptionDenied."""
        if alert.alert_id in self.settlements:
            return Prepared(settlement=True)
        if self.chains is None:
            raise OptionDenied("no_chains", "options need a feed with option chains")
        try:
            if alert.action is AlertAction.EXIT and not is_occ(alert.ticker):
                return Prepared(quotes=await self._held_quotes(alert))
            if alert.action in (AlertAction.EXIT, AlertAction.FLATTEN):
                return Prepared()  # one contract, or everything: the share path
            if is_occ(alert.ticker):
                return Prepared(selection=await self._contract(alert))
            assert alert.option is not None
            side: LegSide = "sell" if alert.action is AlertAction.SELL else "buy"
            return Prepared(
                selection=await select(
                    alert.option,
                    alert.ticker,
                    self.chains,
                    self.today(),
                    opening_side=side,
                    price=price,
                )
            )
        except SelectionError as exc:
            raise OptionDenied("no_contract", str(exc)) from None
        except NoOptionsError as exc:
            raise OptionDenied("no_options", str(exc)) from None
        except FeedError as exc:
            raise OptionDenied("chain_unavailable", f"option chain unavailable: {exc}") from None

    async def _contract(self, alert: Alert) -> Selection:
        """An OCC ticker: that contract, from its expiry's chain (it must be listed)."""
        assert self.chains is not None
        contract = parse_occ(alert.ticker)
        chain = await self.chains.chain(contract.underlying, contract.expiry)
        quote = chain.get(alert.ticker)
        if quote is None:
            raise SelectionError(f"{alert.ticker} is not listed in {contract.underlying}'s chain")
        side: LegSide = "sell" if alert.action is AlertAction.SELL else "buy"
        leg = LegPlan(contract.right, side, 1, strike=contract.strike)
        return Selection(
            contract.underlying,
            (SelectedLeg(leg, quote),),
            chain.underlying_price,
            chain.greeks_time,
        )

    async def _held_quotes(self, alert: Alert) -> dict[str, OptionQuote]:
        """Quotes of the contracts an exit closes (the chains of their expiries, when a
        limit is asked; otherwise whatever the cache holds: a market exit needs none)."""
        assert self.chains is not None
        held = option_holdings(self.engine.book, alert.strategy, alert.ticker)
        if alert.price_mode is not None or alert.price is not None:
            for expiry in sorted({parse_occ(s).expiry for s in held}):
                await self.chains.chain(alert.ticker, expiry)
        return {s: q for s in held if (q := self.chains.quote(s)) is not None}

    async def prepare_or_deny(
        self, alert: Alert, price: float | None, base: dict[str, Any]
    ) -> tuple[Prepared | None, Decision | None]:
        """Before the lock: the chain data an option alert needs (None for a share
        alert), or its denial (``base``: the decision's common fields)."""
        if not self.wants(alert):
            return None, None
        try:
            return await self.prepare(alert, price), None
        except OptionDenied as exc:
            denial = Decision(
                **base, status="denied", check="option", reason=exc.reason, message=str(exc)
            )
            return None, denial

    def requests(
        self,
        prepared: Prepared | None,
        alert: Alert,
        alert_id: str,
        price: float | None,
        rule: SizingRule | None,
        base: dict[str, Any],
    ) -> tuple[list[OrderRequest], dict[str, float]]:
        """Under the lock: the alert's orders and their reference prices (an option
        alert's choice goes into ``base`` for its decision). Raises SizingError."""
        decider = self.engine.decider
        if prepared is None:
            return decider.requests_for(alert, alert_id, price, rule), {}
        planned = self.plan(
            prepared, alert, alert_id, price, rule or self.engine.sizing.rule(alert.strategy)
        )
        base["option"] = planned.choice
        return planned.requests, planned.reference

    def plan(
        self,
        prepared: Prepared,
        alert: Alert,
        alert_id: str,
        price: float | None,
        rule: SizingRule,
    ) -> OptionPlan:
        """Under the engine lock: the orders, on the book as it is now."""
        e = self.engine
        now = e.clock()
        working = list(e.orders.values())
        if prepared.settlement and alert.alert_id in self.settlements:
            return OptionPlan(self.settlements[alert.alert_id]())
        if prepared.selection is not None:
            return plan_option(
                alert, alert_id, e.account, e.book, working, prepared.selection, rule, now
            )
        if alert.action is AlertAction.FLATTEN or is_occ(alert.ticker):
            return OptionPlan(
                plan_in_book(alert, alert_id, e.account, e.book, working, price, rule)
            )
        shares = (
            []
            if alert.option is not None
            else plan_in_book(alert, alert_id, e.account, e.book, working, price, rule)
        )
        options = plan_option_exit(
            alert,
            alert_id,
            e.account,
            e.book,
            working,
            prepared.quotes,
            now,
            first_leg=EXIT_LEGS_FROM,
        )
        options.requests[:0] = shares
        return options
