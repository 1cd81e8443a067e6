"""REST market data: ``/api/v1/quotes`` and ``/api/v1/history``."""

from __future__ import annotations

import time
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel

from app.datahub.deps import ServicesDep
from app.datahub.errors import InvalidRequest, Problem, responses
from app.datahub.market import RangeError
from app.datahub.security import client_address
from app.feeds.base import FeedError
from app.models.market import Bar, Quote, Resolution, is_valid_symbol, normalize_symbol

router = APIRouter(
    prefix="/api/v1",
    tags=["market data"],
    responses={**responses(Problem, 400, 404, 429, 503), **responses(InvalidRequest, 422)},
)


class QuotesResponse(BaseModel):
    quotes: dict[str, Quote]
    unknown: list[str]


class HistoryResponse(BaseModel):
    symbol: str
    resolution: str
    bars: list[Bar]
    next_time: int | None = None


def _symbols(raw: str, limit: int = 200) -> list[str]:
    wanted = list(dict.fromkeys(normalize_symbol(s) for s in raw.split(",") if s.strip()))
    if not wanted:
        raise HTTPException(400, "symbols is required, e.g. ?symbols=AAPL,MSFT")
    if len(wanted) > limit:
        raise HTTPException(400, f"at most {limit} symbols per request")
    bad = [s for s in wanted if not is_valid_symbol(s)]
    if bad:
        raise HTTPException(400, f"invalid symbol(s): {', '.join(bad[:5])}")
    return wanted


@router.get("/quotes", response_model=QuotesResponse)
async def quotes(
    services: ServicesDep, symbols: str = Query(..., description="comma-separated")
) -> Any:
    wanted = _symbols(symbols, services.settings.max_symbols_per_request)
    try:
        found = await services.market.quotes(wanted)
    except FeedError as exc:
        raise HTTPException(503, f"feed unavailable: {exc}") from None
    unknown = [s for s in wanted if s not in found]
    if not found:
        raise HTTPException(404, f"unknown symbol(s): {', '.join(unknown)}")
    return QuotesResponse(quotes=found, unknown=unknown)


@router.get("/history", response_model=HistoryResponse)
async def history(
    services: ServicesDep,
    request: Request,
    symbol: str,
    resolution: str = "1D",
    from_: Annotated[int | None, Query(alias="from", ge=0)] = None,
    to: Annotated[int | None, Query(ge=0)] = None,
    countback: Annotated[int | None, Query(gt=0)] = None,
) -> Any:
    """Bars in ``[from, to)`` (Unix seconds); ``to`` defaults to now, ``countback`` wins over ``from``."""
    sym = _symbols(symbol, limit=1)[0]
    try:
        res = Resolution.parse(resolution)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    if from_ is None and countback is None:
        raise HTTPException(400, "give from (Unix seconds) or countback")
    end = to if to is not None else int(time.time()) + 1
    client = client_address(request, services.settings.trusted_proxies)
    if await services.market.symbols.resolve(sym, client) is None:
        raise HTTPException(404, f"unknown symbol {sym!r}")
    try:
        body = await services.market.history_body(sym, res, from_ or 0, end, countback)
    except RangeError as exc:
        raise HTTPException(400, str(exc)) from None
    except FeedError as exc:
        raise HTTPException(503, f"feed unavailable: {exc}") from None
    cols = orjson.loads(body)
    if cols["s"] != "ok":
        return HistoryResponse(
            symbol=sym, resolution=res.value, bars=[], next_time=cols.get("nextTime")
        )
    bars = [
        Bar.model_construct(time=t, open=o, high=h, low=lo, close=c, volume=v)
        for t, o, h, lo, c, v in zip(
            cols["t"], cols["o"], cols["h"], cols["l"], cols["c"], cols["v"], strict=True
        )
    ]
    return HistoryResponse(symbol=sym, resolution=res.value, bars=bars)
