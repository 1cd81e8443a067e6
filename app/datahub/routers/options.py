"""Options under ``/api/v1/options`` (``X-API-Key``): expirations, one expiration's
chain with quotes and greeks, and the account's option positions grouped as spreads.

Chains come through the process's one :class:`~app.options.chains.OptionChains`
(``services.chains``): a 15 s cache per (underlying, expiration) in front of the feed,
whose latest quotes also price and give greeks to the positions.
"""

from __future__ import annotations

import time
from datetime import date
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from app.datahub.deps import ServicesDep
from app.datahub.errors import InvalidRequest, Problem, responses
from app.datahub.routers.admin import AccountDep
from app.datahub.security import AdminDep
from app.datahub.services import Services
from app.feeds.base import FeedError, NoOptionsError, UnknownSymbolError
from app.models.market import is_valid_symbol, normalize_symbol
from app.models.occ import OptionRight, expiry_date, is_occ
from app.options.chain import OptionChain, OptionQuote
from app.options.groups import SpreadGroup, group_positions

router = APIRouter(
    prefix="/api/v1/options",
    tags=["options"],
    dependencies=[AdminDep],
    responses={**responses(Problem, 401, 404, 503), **responses(InvalidRequest, 422)},
)

NEAREST_SHOWN = 3
FEED_RETRY = {"Retry-After": "5"}


class Expirations(BaseModel):
    symbol: str
    expirations: list[date] = Field(description="listed expirations, soonest first")


class Contract(BaseModel):
    """One listed contract; prices per share (x100 per contract), None: not given."""

    symbol: str = Field(description="OCC option symbol")
    right: OptionRight
    strike: float
    bid: float | None
    ask: float | None
    mid: float | None
    last: float | None
    volume: int
    open_interest: int
    delta: float | None
    gamma: float | None
    theta: float | None
    vega: float | None
    iv: float | None = Field(description="implied volatility, annualised: 0.25 is 25 %")


class Chain(BaseModel):
    underlying: str
    expiration: date
    underlying_price: float | None
    atm_strike: float | None = Field(description="the listed strike nearest the underlying")
    fetched_at: float = Field(description="epoch seconds the feed answered")
    greeks_time: float | None = Field(description="epoch seconds of the oldest greeks")
    greeks_age: float | None = Field(description="seconds since greeks_time")
    contracts: list[Contract] = Field(description="calls then puts, by strike")


class OptionPositions(BaseModel):
    account: str
    groups: list[SpreadGroup]


SymbolQuery = Annotated[
    str, Query(min_length=1, max_length=40, description="the underlying, e.g. SPY")
]


def _underlying(raw: str) -> str:
    symbol = normalize_symbol(raw)
    if is_occ(symbol):
        raise HTTPException(
            422, f"{symbol!r} is an option contract; give its underlying (e.g. SPY)"
        )
    if not is_valid_symbol(symbol):
        raise HTTPException(422, f"invalid symbol {raw[:40]!r}")
    return symbol


def _feed_error(symbol: str, exc: FeedError) -> HTTPException:
    if isinstance(exc, NoOptionsError):
        return HTTPException(404, f"no options listed for {symbol}")
    if isinstance(exc, UnknownSymbolError):
        return HTTPException(404, f"unknown symbol {symbol!r}")
    return HTTPException(503, f"feed unavailable: {exc}", headers=FEED_RETRY)


async def _expirations(services: Services, symbol: str) -> list[date]:
    try:
        found = await services.chains.expirations(symbol)
    except FeedError as exc:
        raise _feed_error(symbol, exc) from None
    if not found:
        raise HTTPException(404, f"no options listed for {symbol}")
    return found


def _nearest(listed: list[date], wanted: date, n: int = NEAREST_SHOWN) -> list[date]:
    return sorted(sorted(listed, key=lambda d: (abs((d - wanted).days), d))[:n])


def _soonest(listed: list[date], today: date) -> date:
    """The first listed expiration not already past (the list may be an hour old)."""
    return next((d for d in listed if d >= today), listed[0])


@router.get("/expirations")
async def expirations(services: ServicesDep, symbol: SymbolQuery) -> Expirations:
    """Listed option expirations of an underlying, soonest first."""
    sym = _underlying(symbol)
    return Expirations(symbol=sym, expirations=await _expirations(services, sym))


@router.get("/chain")
async def chain(
    services: ServicesDep,
    symbol: SymbolQuery,
    expiration: Annotated[
        date | None,
        Query(description="YYYY-MM-DD, one of /options/expirations (default: the soonest)"),
    ] = None,
) -> Chain:
    """One expiration's contracts with quotes and greeks (cached up to 15 s)."""
    sym = _underlying(symbol)
    listed = await _expirations(services, sym)
    if expiration is None:
        expiration = _soonest(listed, expiry_date())
    elif expiration not in listed:
        near = ", ".join(d.isoformat() for d in _nearest(listed, expiration))
        raise HTTPException(
            404, f"no {sym} options expire {expiration.isoformat()}; nearest listed: {near}"
        )
    try:
        found = await services.chains.chain(sym, expiration)
    except NoOptionsError:
        raise HTTPException(
            404, f"no {sym} options listed for {expiration.isoformat()} (any more)"
        ) from None
    except FeedError as exc:
        raise _feed_error(sym, exc) from None
    return _chain(found, time.time())


def _chain(found: OptionChain, now: float) -> Chain:
    greeks_time = found.greeks_time
    strikes = found.strikes()
    price = found.underlying_price
    atm = min(strikes, key=lambda k: abs(float(k) - price)) if strikes and price else None
    return Chain(
        underlying=found.underlying,
        expiration=found.expiration,
        underlying_price=price,
        atm_strike=float(atm) if atm is not None else None,
        fetched_at=found.fetched_at,
        greeks_time=greeks_time,
        greeks_age=round(max(0.0, now - greeks_time), 1) if greeks_time is not None else None,
        contracts=[
            _contract(q) for right in (OptionRight.CALL, OptionRight.PUT) for q in found.side(right)
        ],
    )


def _contract(q: OptionQuote) -> Contract:
    return Contract(
        symbol=q.symbol,
        right=q.right,
        strike=float(q.strike),
        bid=q.bid,
        ask=q.ask,
        mid=q.mid,
        last=q.last,
        volume=q.volume,
        open_interest=q.open_interest,
        delta=q.delta,
        gamma=q.gamma,
        theta=q.theta,
        vega=q.vega,
        iv=q.iv,
    )


@router.get("/positions")
async def positions(services: ServicesDep, account: AccountDep) -> OptionPositions:
    """The account's option positions grouped per (strategy, underlying): legs, net cost
    and unrealised P&L (x100 per contract), net greeks in share equivalents (from the
    chains this process has fetched; null until a leg's chain has been seen)."""
    book = await services.book(account)
    if book is None:
        raise HTTPException(
            503, f"account {account!r} has no book yet: no execution engine has held it"
        )
    return OptionPositions(
        account=account, groups=group_positions(book.positions(), services.chains.quote)
    )
