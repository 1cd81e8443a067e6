"""Tradier behind the ``Broker`` protocol: equity, option and multileg (spread) orders,
status, fills, positions, balances.

Every call goes through the shared ``TradierClient`` (token, JSON, timeouts, quota,
retries) and every answer through ``app.tradier.normalize`` (one-or-many, ``"null"``).

Order safety:

* our client order id travels as Tradier's ``tag``, so an order whose POST went
  unanswered is found again with ``find_by_tag``;
* an order POST is retried only after a 429 (nothing was accepted). A timeout, a
  dropped connection, a 5xx or an unreadable 2xx leave the order's fate unknown:
  ``BrokerTimeoutError``, never a second POST;
* a 4xx is a clear refusal: ``BrokerError`` with Tradier's own message.

Fills: Tradier reports cumulative execution per order (``exec_quantity``,
``avg_fill_price``, ``last_fill_price``/``last_fill_quantity``). ``order_report`` maps
one order to a typed ``OrderReport``; the shared ``OrderPoller``
(``app/brokers/polling.py``) reads the account's orders while any of ours are open and
turns the growth into ``Fill`` deltas whose id is ``{broker order id}-{cumulative
quantity}``: the same observation always yields the same id, so replays are idempotent.

Options: a request whose symbol is an OCC symbol is a ``class=option`` order; a request
with ``legs`` is ONE ``class=multileg`` order (2-4 legs). A multileg order's executions
are reported per leg (``app/brokers/legs.py``): one ``Fill`` per leg per step, with the
leg's OCC symbol and intent, id ``{broker order id}-{leg index}-{cumulative contracts}``.
An expiry/exercise booking (``settle_price``) is never sent: ``BrokerError``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from app.brokers.base import BrokerError, BrokerOrderState, BrokerTimeoutError, EventHandler
from app.brokers.legs import LegFills
from app.brokers.polling import OrderPoller
from app.brokers.tradier.mapping import call_error, order_form, order_report, place_error
from app.models.instruments import multiplier_of
from app.models.market import Quote
from app.models.orders import Fill, Order, Qty
from app.models.portfolio import AccountState, Position
from app.observability.metrics import BROKER_ERRORS
from app.tradier import normalize as tn
from app.tradier.client import PRODUCTION_URL, Params, RetryPolicy, TradierClient, TradierError

if TYPE_CHECKING:
    from app.config import Settings

log = logging.getLogger(__name__)

BROKER = "tradier"


class TradierBroker:
    """Tradier brokerage (production or sandbox, by ``base_url``) for one account."""

    name = BROKER
    # the order poller reports a fill again until the engine has booked it (watermark):
    # the engine does not also replay fills for it while running
    redelivers_fills = True
    keeps_book = True

    def __init__(
        self,
        token: str,
        account: str,
        base_url: str = PRODUCTION_URL,
        *,
        timeout: float = 5.0,
        retry: RetryPolicy | None = None,
        poll_interval: float = 1.0,
        pending_ttl: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not account:
            raise BrokerError("a Tradier account id is required")
        self.account = account
        self.client = TradierClient(token, base_url, timeout=timeout, retry=retry)
        # our orders' progress: the account's listing (by id, so the first placed with a
        # pending tag is adopted), one order by id for those the listing drops
        self.poller: OrderPoller[dict[str, Any]] = OrderPoller(
            broker=BROKER,
            account=account,
            fetch=self._listing,
            report=order_report,
            fetch_one=self.order,
            interval=poll_interval,
            retry=self.client.retry,
            pending_ttl=pending_ttl,
            clock=clock,
        )

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> TradierBroker:
        if settings.tradier_token is None:
            raise BrokerError("TRADEROPS_TRADIER_TOKEN is required for the Tradier broker")
        if not settings.tradier_account_id:
            raise BrokerError("TRADEROPS_TRADIER_ACCOUNT_ID is required for the Tradier broker")
        # One attempt must end before the engine's own deadline, so a slow POST is
        # reported as unknown by us rather than cut off mid-flight.
        kwargs.setdefault(
            "timeout", min(settings.tradier_timeout_seconds, settings.broker_timeout_seconds)
        )
        return cls(
            settings.tradier_token.get_secret_value(),
            settings.tradier_account_id,
            settings.tradier_base_url,
            **kwargs,
        )

    def __repr__(self) -> str:  # never the token
        return f"TradierBroker(account={self.account!r}, base_url={self.client.base_url!r})"

    @property
    def _orders_path(self) -> str:
        return f"/accounts/{self.account}/orders"

    # -- lifecycle ------------------------------------------------------------------
    async def start(self, on_event: EventHandler) -> None:
        await self.client.start()
        self.poller.start(on_event)

    async def on_quote(self, quote: Quote) -> None:
        """Tradier fills its own orders: quotes are not needed here."""

    async def close(self) -> None:
        await self.poller.stop()
        await self.client.close()

    # -- orders ---------------------------------------------------------------------
    async def submit(self, order: Order) -> str:
        """Place the order; Tradier's order id. Never sent twice (see the module doc)."""
        form = order_form(order)
        try:
            body = await self.client.post(self._orders_path, form)
        except TradierError as exc:
            error = place_error(exc, order.id)
            if isinstance(error, BrokerTimeoutError):
                self.poller.unresolved(order)
            raise error from exc
        except asyncio.CancelledError:  # the caller gave up waiting: as unknown as a timeout
            self.poller.unresolved(order)
            raise
        result = tn.first(body, "order")
        errors = tn.collection(body, "errors", "error")
        if errors:  # documented as a 400, but a refusal is a refusal
            raise BrokerError(f"Tradier rejected order {order.id}: {'; '.join(map(str, errors))}")
        if result.get("id") in (None, "", "null"):
            self.poller.unresolved(order)
            raise BrokerTimeoutError(
                f"Tradier answered order {order.id} without an order id; reconcile by tag"
            )
        broker_id = str(result["id"])
        self.poller.track(order, broker_id)
        return broker_id

    async def preview(self, order: Order) -> dict[str, Any]:
        """Tradier's preview of the order (cost, commission, buying power effect); nothing placed."""
        try:
            body = await self.client.post(
                self._orders_path, order_form(order, preview=True), idempotent=True
            )
        except TradierError as exc:
            raise call_error(exc, f"preview of order {order.id}") from exc
        errors = tn.collection(body, "errors", "error")
        if errors:
            raise BrokerError(f"Tradier rejected order {order.id}: {'; '.join(map(str, errors))}")
        return tn.first(body, "order")

    async def cancel(self, order: Order) -> None:
        """Ask Tradier to cancel; the poller reports the resulting status."""
        broker_id = order.broker_order_id
        if broker_id is None:
            state = await self.find_by_tag(order.id)
            if state is None or state.broker_order_id is None:
                raise BrokerError(f"order {order.id} is not known to Tradier")
            broker_id = state.broker_order_id
        try:
            body = await self.client.request("DELETE", f"{self._orders_path}/{broker_id}")
        except TradierError as exc:
            BROKER_ERRORS.labels(BROKER, "cancel").inc()
            raise call_error(exc, f"cancel of order {order.id}") from exc
        errors = tn.collection(body, "errors", "error")
        if errors:
            raise BrokerError(
                f"Tradier refused to cancel order {order.id}: {'; '.join(map(str, errors))}"
            )
        self.poller.track(order, broker_id, order.status)

    async def find_by_tag(self, order_id: str) -> BrokerOrderState | None:
        """Our order at Tradier by its tag; None only when Tradier positively has no such order.

        A failed lookup raises ``BrokerError``: "unknown" must never read as "never placed".
        """
        raw = await self._order_by_tag(order_id)
        return None if raw is None else order_report(raw).state(order_id)

    async def fills_for(
        self,
        order_id: str,
        filled_quantity: Qty | None = None,
        avg_fill_price: float | None = None,
        leg_fills: LegFills | None = None,
    ) -> list[Fill]:
        """Executions not yet reported for one of our orders (reconciliation).

        Tradier keeps only cumulative execution, so what is "new" is measured from a
        baseline: ``filled_quantity``/``avg_fill_price`` when the caller passes what it
        already holds, else what this process already reported, else nothing (the whole
        execution as one fill). A multileg order's baseline is per leg: ``leg_fills``
        (OCC -> [contracts, average price], the order's ``leg_fills``) when given, else
        ``filled_quantity`` units of the spread x each leg's ratio; its fills are one per
        leg that grew. Reported fills advance the poller's watermark too.
        """
        raw = await self._order_by_tag(order_id)
        if raw is None:
            return []
        return await self.poller.fills_for(
            order_id, order_report(raw), filled_quantity, avg_fill_price, leg_fills
        )

    async def orders(self) -> list[dict[str, Any]]:
        """The account's orders as Tradier reports them (tags included)."""
        body = await self._get("orders", self._orders_path, {"includeTags": "true"})
        return [o for o in tn.collection(body, "orders", "order") if isinstance(o, dict)]

    async def _listing(self) -> list[dict[str, Any]]:
        """The account's orders in placement order (Tradier's ids grow)."""
        return sorted(await self.orders(), key=lambda o: tn.integer(o.get("id")))

    async def order(self, broker_order_id: str) -> dict[str, Any]:
        body = await self._get(
            "order", f"{self._orders_path}/{broker_order_id}", {"includeTags": "true"}
        )
        return tn.first(body, "order")

    # -- account ----------------------------------------------------------------------
    async def positions(self) -> list[Position]:
        """The account's positions. An option is listed under its OCC symbol, in
        contracts, with ``cost_basis`` in dollars (x100): its average price is per share."""
        body = await self._get("positions", f"/accounts/{self.account}/positions")
        out = []
        for raw in tn.collection(body, "positions", "position"):
            if not isinstance(raw, dict) or not raw.get("symbol"):
                continue
            symbol = str(raw["symbol"]).strip()
            multiplier = multiplier_of(symbol)
            qty = tn.integer(raw.get("quantity"))
            cost = tn.num(raw.get("cost_basis")) or 0.0
            out.append(
                Position(
                    symbol=symbol,
                    quantity=qty,
                    avg_price=round(abs(cost / qty / multiplier), 6) if qty else 0.0,
                    multiplier=multiplier,
                )
            )
        return out

    async def balances(self) -> AccountState:
        body = await self._get("balances", f"/accounts/{self.account}/balances")
        raw = tn.first(body, "balances")
        if not raw:
            raise BrokerError(f"Tradier returned no balances for account {self.account}")

        def amount(node: dict[str, Any], key: str) -> float | None:
            return tn.num(node.get(key))

        buying_power = None
        for section, key in (
            ("margin", "stock_buying_power"),
            ("pdt", "stock_buying_power"),
            ("cash", "cash_available"),
        ):
            buying_power = amount(tn.first(raw, section), key)
            if buying_power is not None:
                break
        cash = amount(raw, "total_cash") or 0.0
        long_value = amount(raw, "long_market_value") or 0.0
        short_value = amount(raw, "short_market_value") or 0.0
        return AccountState(
            account=str(raw.get("account_number") or self.account),
            cash=cash,
            equity=amount(raw, "total_equity") or 0.0,
            buying_power=cash if buying_power is None else buying_power,
            realized_pnl_today=amount(raw, "close_pl") or 0.0,
            unrealized_pnl=amount(raw, "open_pl") or 0.0,
            gross_exposure=abs(long_value) + abs(short_value),
        )

    # -- internals ------------------------------------------------------------------
    async def _order_by_tag(self, order_id: str) -> dict[str, Any] | None:
        """The newest account order tagged ``order_id``; raises ``BrokerError`` on failure."""
        matches = [o for o in await self.orders() if str(o.get("tag") or "") == order_id]
        if not matches:
            return None
        return max(matches, key=lambda o: tn.integer(o.get("id")))

    async def _get(self, op: str, path: str, params: Params | None = None) -> Any:
        try:
            return await self.client.get(path, params)
        except TradierError as exc:
            BROKER_ERRORS.labels(BROKER, op).inc()
            raise call_error(exc, f"GET {path}") from exc
