"""An order's life at the broker: sent in the background (legs in sequence), its status
moved through the state machine and stored on every transition, canceled on request."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from app.brokers.base import BrokerError, BrokerTimeoutError
from app.models.orders import TRANSITIONS, Order, OrderStatus
from app.observability.metrics import (
    BROKER_ERRORS,
    ORDER_LATENCY,
    ORDERS,
)

if TYPE_CHECKING:
    from app.execution.engine import ExecutionEngine

log = logging.getLogger(__name__)


class OrderLifecycle:
    """The engine's order half: submission and the state machine."""

    def __init__(self, engine: ExecutionEngine) -> None:
        self.engine = engine
        self.sending: set[str] = set()  # orders with a submit scheduled or in flight

    def send(self, orders: list[Order]) -> None:
        """Submit in the background; the watcher leaves these alone meanwhile."""
        self.sending.update(o.id for o in orders)
        self.engine.spawn(self._submit_chain(orders))

    async def _submit_chain(self, orders: list[Order]) -> None:
        """Legs in sequence: a reversal covers first, then opens."""
        try:
            await self._submit_legs(orders)
        finally:
            self.sending.difference_update(o.id for o in orders)

    async def _submit_legs(self, orders: list[Order]) -> None:
        for order in orders:
            await self.submit(order)
            if len(orders) > 1:
                for _ in range(200):
                    current = self.engine.orders.get(order.id)
                    if current is None or current.status.terminal:
                        break
                    await asyncio.sleep(0.01)

    async def submit(self, order: Order) -> None:
        start = time.perf_counter()
        try:
            async with asyncio.timeout(self.engine.broker_timeout):  # (no wait_for task per order)
                broker_id = await self.engine.broker.submit(order)
        except (TimeoutError, BrokerTimeoutError) as exc:
            BROKER_ERRORS.labels(self.engine.broker.name, "submit").inc()
            self.engine.risk.on_broker_result(False)
            await self.locked_transition(
                order.id,
                OrderStatus.UNKNOWN,
                f"broker timeout: {exc or 'no answer'}; reconcile by tag",
            )
            return
        except RedisError as exc:
            # our own state store failed (the paper broker keeps its book in Redis): the
            # order stays NEW and the watcher sends it once the broker can take it.
            # (After the timeout clause: TimeoutError is an OSError and means "unknown".)
            log.warning("could not send order %s yet: %s", order.id, exc)
            return
        except BrokerError as exc:
            BROKER_ERRORS.labels(self.engine.broker.name, "submit").inc()
            self.engine.risk.on_broker_result(False)
            await self.locked_transition(order.id, OrderStatus.REJECTED, str(exc))
            return
        ORDER_LATENCY.labels(self.engine.broker.name).observe(time.perf_counter() - start)
        self.engine.risk.on_broker_result(True)
        async with self.engine.lock:
            current = self.engine.orders.get(order.id)
            if current is not None and current.broker_order_id is None:
                current.broker_order_id = broker_id
                if current.status is OrderStatus.NEW:
                    await self.transition(current, OrderStatus.SUBMITTED)

    async def locked_transition(
        self, order_id: str, status: OrderStatus, reason: str | None = None
    ) -> None:
        async with self.engine.lock:
            order = self.engine.orders.get(order_id)
            if order is not None:
                await self.transition(order, status, reason)

    async def transition(
        self, order: Order, status: OrderStatus, reason: str | None = None
    ) -> None:
        if status == order.status and status is not OrderStatus.PARTIALLY_FILLED:
            return
        if status not in TRANSITIONS[order.status]:
            log.warning(
                "ignoring %s -> %s for order %s", order.status.value, status.value, order.id
            )
            return
        order.status = status
        order.updated_at = self.engine.clock()
        if reason:
            order.reason = reason
        await self.engine.store.save_order(order)
        ORDERS.labels(self.engine.broker.name, status.value).inc()
        if status.terminal:
            self.engine.orders.pop(order.id, None)
            self.engine.book.order_done(order.id)

    async def cancel(self, order_id: str) -> Order:
        order = self.engine.orders.get(order_id)
        if order is None:
            stored = await self.engine.store.get_order(order_id)
            if stored is None:
                raise KeyError(order_id)
            raise ValueError(f"order {order_id} is {stored.status.value} and cannot be canceled")
        if order.status is OrderStatus.NEW:
            await self.locked_transition(
                order_id, OrderStatus.CANCELED, "canceled before reaching the broker"
            )
        else:
            await self.engine.broker.cancel(order)
        return (await self.engine.store.get_order(order_id)) or order
