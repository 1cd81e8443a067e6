"""Options at expiry: after the close of their expiration session, contracts still held
are settled. Out of the money: booked at 0 (worthless). In the money: exercised (long)
or assigned (short) into 100 shares a contract at the strike, the contract booked at 0.

For a broker that keeps its own book (Tradier) the broker settles and we adopt its
positions, loudly. For the paper broker the settlement is a set of orders with a
``settle_price``, decided through the normal path under an id of their own
(``expiry-{symbol}``), so they are stored, journaled and never booked twice; risk
checks do not apply to them (nothing is traded).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, time
from functools import partial
from typing import TYPE_CHECKING

from app.execution.planner import order_id
from app.models.alerts import Alert, AlertAction
from app.models.occ import EXPIRY_TZ, OptionRight, is_occ, parse_occ
from app.models.orders import Intent, OrderRequest
from app.portfolio.book import AccountBook
from app.sessions import get_sessions

if TYPE_CHECKING:
    from app.execution.engine import ExecutionEngine

log = logging.getLogger(__name__)
CONTRACT = 100


def expired(symbol: str, now: float, calendar: str = "XNYS") -> bool:
    """True once the expiration session of ``symbol`` has closed (a date without a
    session: its end, New York time)."""
    expiry = parse_occ(symbol).expiry
    session = get_sessions(calendar).session(expiry)
    if session is not None:
        return now >= session.close.timestamp()
    return now >= datetime.combine(expiry, time(23, 59, 59), EXPIRY_TZ).timestamp()


def settlement(
    book: AccountBook, symbol: str, underlying_price: float, alert_id: str, account: str
) -> list[OrderRequest]:
    """The bookings that settle every strategy's part of ``symbol`` at ``underlying_price``."""
    contract = parse_occ(symbol)
    strike = float(contract.strike)
    call = contract.right is OptionRight.CALL
    itm = underlying_price > strike if call else underlying_price < strike
    shares = book.position(contract.underlying)
    requests: list[OrderRequest] = []
    for strategy, qty in sorted(
        (k[0], p.qty) for k, p in book.strategies.items() if k[1] == symbol and p.qty
    ):
        requests.append(
            OrderRequest(
                client_order_id=order_id(account, alert_id, len(requests)),
                symbol=symbol,
                intent=Intent.SELL if qty > 0 else Intent.BUY_TO_COVER,
                quantity=abs(qty),
                strategy=strategy,
                alert_id=alert_id,
                settle_price=0.0,
            )
        )
        if not itm:
            continue
        # a long call or a short put ends buying the shares; a long put or short call selling
        delta = abs(qty) * CONTRACT * (1 if (qty > 0) == call else -1)
        closing = min(abs(delta), abs(shares)) if shares and (shares > 0) != (delta > 0) else 0
        parts = []
        if closing:
            parts.append((Intent.BUY_TO_COVER if delta > 0 else Intent.SELL, closing))
        if abs(delta) - closing:
            parts.append((Intent.BUY if delta > 0 else Intent.SELL_SHORT, abs(delta) - closing))
        for intent, quantity in parts:
            requests.append(
                OrderRequest(
                    client_order_id=order_id(account, alert_id, len(requests)),
                    symbol=contract.underlying,
                    intent=intent,
                    quantity=quantity,
                    strategy=strategy,
                    alert_id=alert_id,
                    settle_price=strike,
                )
            )
        shares += delta
    return requests


class Expirer:
    """Settles this account's expired contracts (see the module docstring)."""

    def __init__(
        self, engine: ExecutionEngine, every: float = 60.0, adopt_every: float = 900.0
    ) -> None:
        self.engine = engine
        self.every = every
        # a broker settles overnight: until then its book still holds the contract, so it
        # is asked again only this often, and the same contracts are reported once
        self.adopt_every = adopt_every
        self.adopted_at = float("-inf")
        self.reported: set[str] = set()

    def due(self, now: float) -> list[str]:
        return sorted(
            s
            for s, h in self.engine.book.holdings.items()
            if h.qty and is_occ(s) and expired(s, now)
        )

    async def run(self) -> None:
        """Every ``every`` seconds while the engine runs (a failure is retried next time)."""
        while True:
            try:
                await self.run_once()
            except Exception:
                log.exception("expiry: settling expired contracts failed; retrying")
            await asyncio.sleep(self.every)

    async def run_once(self) -> list[str]:
        """Settle what is due; the symbols settled (or adopted from the broker)."""
        e = self.engine
        due = self.due(e.clock())
        if not due:
            return []
        if e.broker.keeps_book:
            now = e.clock()
            if now - self.adopted_at < self.adopt_every:
                return []
            self.adopted_at = now
            if not set(due) <= self.reported:
                log.warning("expiry: %s expired; adopting the broker's positions", ", ".join(due))
                self.reported.update(due)
            await e.reconciler.adopt_broker_book()
            return due
        done = []
        for symbol in due:
            underlying = parse_occ(symbol).underlying
            quote = await e.quotes(underlying)
            if quote is None:
                log.warning("expiry: no price for %s; %s settles later", underlying, symbol)
                continue
            alert_id = f"expiry-{symbol}"
            e.options.settlements[alert_id] = partial(
                settlement, e.book, symbol, quote.last, alert_id, e.account
            )
            try:
                decision = await e.handle_alert(
                    Alert(ticker=symbol, action=AlertAction.EXIT, alert_id=alert_id)
                )
            finally:
                e.options.settlements.pop(alert_id, None)
            log.info(
                "expiry: %s settled at %s %.2f (%s)",
                symbol,
                underlying,
                quote.last,
                decision.status,
            )
            done.append(symbol)
        return done
