"""The built-in paper broker: fills against live quotes, state in Redis, restart-safe.

Market orders fill at the ask (buys) or bid (sells) plus slippage; limit and stop
orders rest until a quote crosses them. Every order is keyed by our client order
id, so a repeated submit is a no-op and reconciliation after a crash is a lookup.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import orjson
from redis.asyncio import Redis

from app.autopipeline import AutoPipeline
from app.brokers.base import BrokerError, BrokerEvent, BrokerOrderState, EventHandler
from app.brokers.paper_options import net_per_unit, spread_fills, spread_prices
from app.brokers.registry import BrokerContext, BrokerSpec, register
from app.bus import Keys
from app.models.market import Quote
from app.models.occ import is_occ
from app.models.orders import Fill, Order, OrderStatus, OrderType, Qty, Side
from app.models.portfolio import AccountState, Position

log = logging.getLogger(__name__)

QuoteSource = Callable[[str], Awaitable[Quote | None]]


class PaperBroker:
    name = "paper"
    keeps_book = False  # our ledger is its book
    redelivers_fills = False

    def __init__(
        self,
        redis: Redis,
        quotes: QuoteSource,
        *,
        account: str = "paper",
        namespace: str | None = None,
        slippage_bps: float = 1.0,
        commission_per_share: float = 0.0,
        min_commission: float = 0.0,
        commission_per_contract: float = 0.0,
        partial_fill_shares: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = redis
        self._batch = AutoPipeline(redis)  # a batch of orders' records: one write
        self.quotes = quotes
        self.account = account
        self.slippage = slippage_bps / 10_000
        self.per_share = commission_per_share
        self.per_contract = commission_per_contract
        self.min_commission = min_commission
        self.partial = partial_fill_shares
        self.clock = clock
        self.key = Keys.paper_orders(namespace or "default")  # the trading account's keys
        self.resting: dict[str, dict[str, Any]] = {}  # order id -> record (open orders)
        self.on_event: EventHandler | None = None
        self._lock = asyncio.Lock()

    async def start(self, on_event: EventHandler) -> None:
        self.on_event = on_event
        for raw in (await self.redis.hgetall(self.key)).values():
            record = orjson.loads(raw)
            if record["status"] in ("submitted", "partially_filled"):
                self.resting[record["order"]["id"]] = record

    async def close(self) -> None:
        return None

    async def submit(self, order: Order) -> str:
        """Take the order; one that the current quote already crosses (a market order)
        fills here, and its record is stored once, filled, instead of twice."""
        if order.id in self.resting:
            return str(self.resting[order.id]["broker_order_id"])
        record: dict[str, Any] = {
            "order": order.model_dump(mode="json"),
            "broker_order_id": f"P-{uuid.uuid4().hex[:12]}",
            "status": OrderStatus.SUBMITTED.value,
            "filled": 0,
            "avg_price": None,
            "fills": [],
        }
        fills: list[Fill] = []
        if order.request.legs or order.request.settle_price is not None:
            fills, record = await self._option_fills(record)
        else:
            quote = await self.quotes(order.request.symbol)
            if quote is None:
                record["status"] = OrderStatus.REJECTED.value
                record["reason"] = f"no quote for {order.request.symbol}"
            else:
                price = self._fill_price(record, quote)
                if price is not None:
                    fill, record = self._filled(record, price)
                    fills.append(fill)
        if not await self.create_record(order.id, orjson.dumps(record)):
            existing = orjson.loads(await self.redis.hget(self.key, order.id) or b"{}")
            if existing.get("broker_order_id") != record["broker_order_id"]:
                # resubmit of an order we already hold (e.g. after a restart): idempotent
                await self.find_by_tag(order.id)  # rest it if it is open and not held
                return str(existing.get("broker_order_id", ""))
            # else: our own write, its reply lost and the command retried: carry on
        broker_id = str(record["broker_order_id"])
        status = OrderStatus(record["status"])
        if not status.terminal:
            self.resting[order.id] = record
        await self._emit_fills(fills, status, broker_id)
        if not fills:
            await self._emit(BrokerEvent(order.id, status, broker_id, reason=record.get("reason")))
        return broker_id

    async def _option_fills(self, record: dict[str, Any]) -> tuple[list[Fill], dict[str, Any]]:
        """A spread (every leg at once) or an expiry booking, if it fills now."""
        request = record["order"]["request"]
        if request.get("settle_price") is not None:
            fill, record = self._filled(record, float(request["settle_price"]))
            return [fill], record
        prices = await spread_prices(request, self.quotes, self.slippage)
        if prices is None:
            if OrderType(request["order_type"]) is OrderType.MARKET:
                record["status"] = OrderStatus.REJECTED.value
                record["reason"] = "no two-sided quote for every leg of the spread"
            return [], record
        fills = spread_fills(
            record,
            prices,
            broker=self.name,
            account=self.account,
            per_contract=self.per_contract,
            now=self.clock(),
        )
        updated = {
            **record,
            "filled": request["quantity"],
            "avg_price": round(net_per_unit(request["legs"], prices), 6),
            "fills": [*record["fills"], *(f.model_dump(mode="json") for f in fills)],
            "status": OrderStatus.FILLED.value,
        }
        return fills, updated

    async def cancel(self, order: Order) -> None:
        record = self.resting.get(order.id)
        if record is None:
            raise BrokerError(f"order {order.id} is not open at the paper broker")
        await self._finish(record, OrderStatus.CANCELED, "canceled by request")

    async def find_by_tag(self, order_id: str) -> BrokerOrderState | None:
        raw = await self.redis.hget(self.key, order_id)
        if raw is None:
            return None
        record = orjson.loads(raw)
        if record["status"] in ("submitted", "partially_filled") and order_id not in self.resting:
            # stored, but the submit that wrote it failed before keeping it (the reply was
            # lost with Redis): it rests from now on, like one read at start-up. Read again
            # under the lock, so an order canceled meanwhile is not revived.
            async with self._lock:
                raw = await self.redis.hget(self.key, order_id)
                record = orjson.loads(raw or b"{}")
                if record.get("status") in ("submitted", "partially_filled"):
                    self.resting.setdefault(order_id, record)
        return BrokerOrderState(
            order_id=order_id,
            broker_order_id=record["broker_order_id"],
            status=OrderStatus(record["status"]),
            filled_quantity=record["filled"],
            avg_fill_price=record["avg_price"],
        )

    async def fills_for(
        self,
        order_id: str,
        filled_quantity: Qty | None = None,
        avg_fill_price: float | None = None,
        leg_fills: Mapping[str, Sequence[float]] | None = None,
    ) -> list[Fill]:
        """Fills the paper broker made for an order; each has its own id, so the engine
        skips the ones it already booked (the booked totals are not needed here).
        """
        raw = await self.redis.hget(self.key, order_id)
        if raw is None:
            return []
        return [Fill.model_validate(f) for f in orjson.loads(raw)["fills"]]

    async def positions(self) -> list[Position]:
        raise NotImplementedError("the paper broker keeps no book of its own (keeps_book)")

    async def balances(self) -> AccountState:
        raise NotImplementedError("the paper broker keeps no book of its own (keeps_book)")

    async def on_quote(self, quote: Quote) -> None:
        """Fill resting orders that this quote crosses."""
        for record in [
            r for r in self.resting.values() if r["order"]["request"]["symbol"] == quote.symbol
        ]:
            if record["order"]["request"].get("legs"):
                await self._fill_spread(record)
                continue
            price = self._fill_price(record, quote)
            if price is not None:
                await self._fill(record, price)

    async def _fill_spread(self, record: dict[str, Any]) -> None:
        """A resting spread, re-priced on a quote of its underlying."""
        fills, updated = await self._option_fills(dict(record))
        if not fills:
            return
        async with self._lock:
            if record["status"] not in ("submitted", "partially_filled"):
                return
            await self.save_record(updated)
            record.update(updated)
            self.resting.pop(record["order"]["id"], None)
        await self._emit_fills(fills, OrderStatus.FILLED, record["broker_order_id"])

    async def _emit_fills(self, fills: list[Fill], status: OrderStatus, broker_id: str) -> None:
        """A spread's leg fills reported together (one batch: one write of the book);
        all but the last are partial fills of the order."""
        last = len(fills) - 1
        await asyncio.gather(
            *(
                self._emit(
                    BrokerEvent(
                        f.order_id,
                        status if i == last else OrderStatus.PARTIALLY_FILLED,
                        broker_id,
                        fill=f,
                    )
                )
                for i, f in enumerate(fills)
            )
        )

    # -- internals -------------------------------------------------------------
    def _fill_price(self, record: dict[str, Any], quote: Quote) -> float | None:
        req = record["order"]["request"]
        side = Side.BUY if req["intent"] in ("buy", "buy_to_cover") else Side.SELL
        kind = OrderType(req["order_type"])
        touch = quote.ask if side is Side.BUY else quote.bid
        slipped = touch * (1 + self.slippage) if side is Side.BUY else touch * (1 - self.slippage)
        if kind in (OrderType.STOP, OrderType.STOP_LIMIT) and not record.get("triggered"):
            stop = req["stop_price"]
            if (side is Side.BUY and quote.last < stop) or (
                side is Side.SELL and quote.last > stop
            ):
                return None
            record["triggered"] = True
            kind = OrderType.MARKET if kind is OrderType.STOP else OrderType.LIMIT
        elif kind is OrderType.STOP:
            kind = OrderType.MARKET
        elif kind is OrderType.STOP_LIMIT:
            kind = OrderType.LIMIT
        if kind is OrderType.MARKET:
            return round(slipped, 4)
        limit = req["limit_price"]
        limit = float(limit)
        if side is Side.BUY and touch <= limit:
            return round(min(limit, touch), 4)
        if side is Side.SELL and touch >= limit:
            return round(max(limit, touch), 4)
        return None

    def _filled(self, record: dict[str, Any], price: float) -> tuple[Fill, dict[str, Any]]:
        """The next fill at ``price`` and the record as it stands after it (not saved)."""
        order = record["order"]
        request = order["request"]
        remaining = request["quantity"] - record["filled"]
        qty = min(remaining, self.partial) if self.partial else remaining
        if is_occ(request["symbol"]):
            commission = round(self.per_contract * qty, 4)
        else:
            commission = (
                round(max(self.min_commission, self.per_share * qty), 4)
                if self.per_share
                else self.min_commission
            )
        fill = Fill(
            id=f"{record['broker_order_id']}-{len(record['fills']) + 1}",
            order_id=order["id"],
            broker=self.name,
            account=self.account,
            symbol=request["symbol"],
            intent=request["intent"],
            quantity=qty,
            price=price,
            commission=commission,
            time=self.clock(),
            strategy=request["strategy"],
        )
        prev = record["filled"]
        filled = prev + qty
        updated = {
            **record,
            "filled": filled,
            "avg_price": ((record["avg_price"] or 0.0) * prev + price * qty) / filled,
            "fills": [*record["fills"], fill.model_dump(mode="json")],
            "status": (
                OrderStatus.FILLED
                if filled >= request["quantity"]
                else OrderStatus.PARTIALLY_FILLED
            ).value,
        }
        return fill, updated

    async def _fill(self, record: dict[str, Any], price: float) -> None:
        async with self._lock:
            remaining = record["order"]["request"]["quantity"] - record["filled"]
            if remaining <= 0 or record["status"] not in ("submitted", "partially_filled"):
                return
            fill, updated = self._filled(record, price)
            await self.save_record(
                updated
            )  # a fill exists once saved: if this fails, a later quote retries
            record.update(updated)
            if record["status"] == OrderStatus.FILLED.value:
                self.resting.pop(record["order"]["id"], None)
        await self._emit(
            BrokerEvent(
                fill.order_id,
                OrderStatus(record["status"]),
                record["broker_order_id"],
                fill=fill,
            )
        )

    async def _finish(self, record: dict[str, Any], status: OrderStatus, reason: str) -> None:
        async with self._lock:
            record["status"] = status.value
            record["reason"] = reason
            await self.save_record(record)
            self.resting.pop(record["order"]["id"], None)
        await self._emit(
            BrokerEvent(record["order"]["id"], status, record["broker_order_id"], reason=reason)
        )

    async def create_record(self, order_id: str, raw: bytes) -> bool:
        """Store a new order's record unless one exists (HSETNX; the submits of a batch
        of orders go out together)."""
        return bool(await self._batch.command("HSETNX", self.key, order_id, raw))

    async def save_record(self, record: dict[str, Any]) -> None:
        await self.redis.hset(self.key, record["order"]["id"], orjson.dumps(record))

    async def _emit(self, event: BrokerEvent) -> None:
        if self.on_event is not None:
            await self.on_event(event)


def _build(ctx: BrokerContext) -> PaperBroker:
    """A paper book of the account's own (fills at the quote, with the paper settings)."""
    settings = ctx.settings
    return PaperBroker(
        ctx.redis,
        ctx.quote,
        account="paper" if ctx.account_id == "default" else ctx.account_id,
        namespace=ctx.account_id,
        slippage_bps=settings.paper_slippage_bps,
        commission_per_share=settings.paper_commission_per_share,
        min_commission=settings.paper_min_commission,
        commission_per_contract=settings.paper_commission_per_contract,
        partial_fill_shares=settings.paper_partial_fill_shares,
    )


register(BrokerSpec("paper", _build, description="built-in paper broker (Redis-backed book)"))
