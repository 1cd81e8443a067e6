"""Admin and read API under ``/api/v1`` (``X-API-Key`` on every call)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.datahub.deps import ServicesDep
from app.datahub.errors import InvalidRequest, Problem, responses
from app.datahub.security import AdminDep
from app.datahub.services import Services
from app.journal.analytics import analytics, calendar
from app.models.alerts import Decision
from app.models.market import is_valid_symbol, normalize_symbol
from app.models.orders import Order
from app.models.portfolio import AccountState, Position
from app.portfolio.book import AccountBook

router = APIRouter(
    prefix="/api/v1",
    tags=["admin"],
    dependencies=[AdminDep],
    responses={
        **responses(Problem, 400, 401, 404, 409, 413, 502, 503),
        **responses(InvalidRequest, 422),
    },
)


MAX_REASON = 500  # logged, stored and shown on every GET /risk: a sentence, not a file


class KillSwitchRequest(BaseModel):
    """Strict: ``"flatten": "yes"`` or ``1`` is a 422, never a flatten; an unknown field
    is a 422, never ignored."""

    model_config = ConfigDict(strict=True, extra="forbid")

    state: Literal["ACTIVE", "REDUCING", "HALTED"]
    flatten: bool = False
    reason: str | None = Field(None, max_length=MAX_REASON)


class FlattenRequest(BaseModel):
    """Strict, and an unknown field is a 422: ``{"symbl": "AAPL"}`` must not flatten
    every position."""

    model_config = ConfigDict(strict=True, extra="forbid")

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


async def account_param(
    services: ServicesDep,
    account: Annotated[
        str | None, Query(description="account id (default: the default account)")
    ] = None,
) -> str:
    """The account a call is about; an unknown one is a 404."""
    if account is None:
        return services.accounts.default
    if services.accounts.get(account) is None:
        raise HTTPException(404, f"no account {account!r} (GET /api/v1/accounts lists them)")
    return account


AccountDep = Annotated[str, Depends(account_param)]


async def _command(
    services: Services, account: str, name: str, args: dict[str, Any]
) -> dict[str, Any]:
    """Run a command in the account's engine, wherever it runs."""
    result = await services.intake.command(account, name, args)
    if result is None:
        raise HTTPException(
            504,
            f"no engine answered for account {account!r} within 5 s; the command is queued "
            "and runs when an execution process holds the account",
        )
    if not result.get("ok"):
        raise HTTPException(int(result.get("status", 500)), str(result.get("detail")))
    for key in ("ok", "command_id", "account"):
        result.pop(key, None)
    return result


async def _ledger(services: Services, account: str) -> AccountBook:
    ledger = await services.book(account)
    if ledger is None:
        raise HTTPException(
            503, f"account {account!r} has no book yet: no execution engine has held it"
        )
    return ledger


@router.get("/accounts")
async def list_accounts(services: ServicesDep) -> dict[str, list[dict[str, Any]]]:
    """Every declared account: broker, which process holds it, kill switch, money."""
    out = []
    for cfg in services.accounts.accounts:
        store = services.store(cfg.id)
        holder = await services.redis.get(store.keys.lease)
        snap = await store.load_snapshot() or {}
        ledger = await services.book(cfg.id)
        out.append(
            {
                "id": cfg.id,
                "broker": cfg.broker,
                "default": cfg.id == services.accounts.default,
                "held_by": holder.decode() if isinstance(holder, bytes) else holder,
                "kill_switch": (snap.get("kill_switch") or {}).get("state")
                or await store.load_kill_switch()
                or "ACTIVE",
                "account": ledger.state().model_dump() if ledger is not None else None,
                "daily_pnl": round(ledger.daily_pnl, 2) if ledger is not None else None,
            }
        )
    return {"accounts": out}


@router.get("/orders")
async def list_orders(
    services: ServicesDep,
    account: AccountDep,
    status: Literal["open", "all"] = "all",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, list[Order]]:
    store = services.store(account)
    orders = await store.open_orders() if status == "open" else await store.recent_orders(limit)
    return {"orders": orders[:limit]}


@router.get("/orders/{order_id}")
async def get_order(services: ServicesDep, account: AccountDep, order_id: str) -> Order:
    order = await services.store(account).get_order(order_id)
    if order is None:
        raise HTTPException(404, f"no order {order_id}")
    return order


@router.delete("/orders/{order_id}")
async def cancel_order(services: ServicesDep, account: AccountDep, order_id: str) -> Order:
    result = await _command(services, account, "cancel", {"order_id": order_id})
    return Order.model_validate(result["order"])


@router.get("/positions")
async def positions(services: ServicesDep, account: AccountDep) -> dict[str, list[Position]]:
    return {"positions": (await _ledger(services, account)).positions()}


@router.get("/account")
async def get_account(services: ServicesDep, account: AccountDep) -> AccountState:
    return (await _ledger(services, account)).state()


@router.get("/risk")
async def risk(services: ServicesDep, account: AccountDep) -> dict[str, Any]:
    """Risk state and limits from the account's engine; cash, equity and daily P&L from
    the account's book of record (the same figures as ``/account``)."""
    store = services.store(account)
    snap = await store.load_snapshot()
    if snap is None:
        raise HTTPException(
            503, f"no engine holds account {account!r} (is an execution process running?)"
        )
    ledger = await _ledger(services, account)
    state = ledger.state()
    snap["account"] = (snap.get("account") or {}) | {
        "cash": state.cash,
        "equity": state.equity,
        "buying_power": state.buying_power,
        "gross_exposure": state.gross_exposure,
        "open_positions": state.open_positions,
    }
    snap["daily"] = (snap.get("daily") or {}) | {
        "pnl": round(ledger.daily_pnl, 2),
        "day": ledger.day,
        "day_start_equity": ledger.day_start_equity,
    }
    snap["daily_pnl"] = round(ledger.daily_pnl, 2)
    return snap


@router.post("/risk/kill-switch")
async def kill_switch(
    services: ServicesDep,
    body: KillSwitchRequest,
    account: Annotated[
        str | None, Query(description="account id, or 'all' for every account")
    ] = None,
) -> dict[str, Any]:
    args = body.model_dump()
    if account == "all":  # the global kill switch: every account, each its own answer
        results = {
            a: await _command(services, a, "kill-switch", args) for a in services.accounts.ids
        }
        return {"state": body.state, "accounts": results}
    return await _command(services, await account_param(services, account), "kill-switch", args)


@router.post("/flatten")
async def flatten(
    services: ServicesDep, account: AccountDep, body: FlattenRequest | None = None
) -> dict[str, Any]:
    return await _command(services, account, "flatten", {"symbol": body.symbol if body else None})


@router.get("/alerts")
async def alerts(
    services: ServicesDep,
    account: AccountDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, list[Decision]]:
    return {"alerts": await services.store(account).recent_alerts(limit)}


@router.get("/alerts/{alert_id}")
async def alert(services: ServicesDep, alert_id: str) -> dict[str, Any]:
    """What became of one alert in every account it was routed to (after a ``queued``)."""
    taken = await services.intake.decisions(alert_id)
    if taken is None:
        raise HTTPException(404, f"no alert {alert_id} taken in (or it expired)")
    return {
        "alert_id": alert_id,
        "decisions": [
            d.model_dump(exclude_none=True)
            if d is not None
            else {"account": a, "status": "queued", "alert_id": alert_id}
            for a, d in zip(taken.accounts, taken.decisions, strict=True)
        ],
    }


@router.get("/analytics")
async def get_analytics(
    services: ServicesDep,
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
        calendar=services.settings.journal_calendar,
    )


@router.get("/analytics/calendar")
async def get_calendar(
    services: ServicesDep, months: Annotated[int, Query(ge=1, le=24)] = 3
) -> dict[str, Any]:
    """Daily net P&L for the heat map (whole months, the current one included)."""
    settings = services.settings
    return await calendar(
        services.redis, months, tz=settings.tradenote_timezone, exchange=settings.journal_calendar
    )
