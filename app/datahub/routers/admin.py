"""Admin and read API under ``/api/v1`` (``X-API-Key`` on every call)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field, field_validator

from app.brokers.base import BrokerError
from app.datahub.deps import ReadyServicesDep
from app.datahub.errors import InvalidRequest, Problem, responses
from app.datahub.security import AdminDep
from app.journal.analytics import analytics, calendar
from app.models.alerts import Decision
from app.models.market import is_valid_symbol, normalize_symbol
from app.models.orders import Order
from app.models.portfolio import AccountState, Position

router = APIRouter(
    prefix="/api/v1",
    tags=["admin"],
    dependencies=[AdminDep],
    responses={
        **responses(Problem, 400, 401, 404, 409, 502, 503),
        **responses(InvalidRequest, 422),
    },
)


class KillSwitchRequest(BaseModel):
    state: Literal["ACTIVE", "REDUCING", "HALTED"]
    flatten: bool = False
    reason: str | None = None


class FlattenRequest(BaseModel):
    symbol: str | None = Field(None, description="one symbol; omit to flatten every position")

    @field_validator("symbol")
    @classmethod
    def _symbol(cls, value: str | None) -> str | None:
        if value is None:
            return None
        symbol = normalize_symbol(value)
        if not is_valid_symbol(symbol):
            raise ValueError(f"invalid symbol {value[:40]!r}")
        return symbol


@router.get("/orders")
async def list_orders(
    services: ReadyServicesDep,
    status: Literal["open", "all"] = "all",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, list[Order]]:
    store = services.engine.store
    orders = await store.open_orders() if status == "open" else await store.recent_orders(limit)
    return {"orders": orders[:limit]}


@router.get("/orders/{order_id}")
async def get_order(services: ReadyServicesDep, order_id: str) -> Order:
    order = await services.engine.store.get_order(order_id)
    if order is None:
        raise HTTPException(404, f"no order {order_id}")
    return order


@router.delete("/orders/{order_id}")
async def cancel_order(services: ReadyServicesDep, order_id: str) -> Order:
    try:
        return await services.engine.cancel(order_id)
    except KeyError:
        raise HTTPException(404, f"no order {order_id}") from None
    except ValueError as exc:
        raise HTTPException(409, str(exc)) from None
    except BrokerError as exc:
        raise HTTPException(502, f"broker refused the cancel: {exc}") from None


@router.get("/positions")
async def positions(services: ReadyServicesDep) -> dict[str, list[Position]]:
    return {"positions": services.engine.ledger.positions()}


@router.get("/account")
async def account(services: ReadyServicesDep) -> AccountState:
    return services.engine.ledger.state()


@router.get("/risk")
async def risk(services: ReadyServicesDep) -> dict[str, Any]:
    return services.engine.risk_snapshot()


@router.post("/risk/kill-switch")
async def kill_switch(services: ReadyServicesDep, body: KillSwitchRequest) -> dict[str, Any]:
    state = await services.engine.set_kill_switch(body.state, body.reason)
    flattened: list[Decision] = []
    if body.flatten:
        flattened = await services.engine.flatten(reason="kill-switch")
    return {"state": state.value, "flatten": [d.model_dump(exclude_none=True) for d in flattened]}


@router.post("/flatten")
async def flatten(services: ReadyServicesDep, body: FlattenRequest | None = None) -> dict[str, Any]:
    symbol = body.symbol if body else None
    decisions = await services.engine.flatten(symbol)
    return {"orders": [d.model_dump(exclude_none=True) for d in decisions]}


@router.get("/alerts")
async def alerts(
    services: ReadyServicesDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> dict[str, list[Decision]]:
    return {"alerts": await services.engine.store.recent_alerts(limit)}


@router.get("/analytics")
async def get_analytics(
    services: ReadyServicesDep,
    start: date | None = None,
    end: date | None = None,
    capital: Annotated[float | None, Query(gt=0)] = None,
) -> dict[str, Any]:
    """Performance from our own fill ledger: total, paper and live (cached until a new fill)."""
    if start and end and start > end:
        raise HTTPException(422, "start must not be after end")
    return await analytics(
        services.redis,
        start=start,
        end=end,
        capital=capital,
        tz=services.settings.tradenote_timezone,
    )


@router.get("/analytics/calendar")
async def get_calendar(
    services: ReadyServicesDep, months: Annotated[int, Query(ge=1, le=24)] = 3
) -> dict[str, Any]:
    """Daily net P&L for the heat map (whole months, the current one included)."""
    return await calendar(services.redis, months, tz=services.settings.tradenote_timezone)
