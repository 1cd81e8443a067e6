"""TradingView UDF datafeed (Charting Library's UDFCompatibleDatafeed).

Errors keep UDF's own shape, ``{"s": "error", "errmsg": ...}``, with a 4xx status.
"""

from __future__ import annotations

import math
import time
from typing import Annotated, Any, Protocol, runtime_checkable

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from app.datahub.deps import ServicesDep
from app.datahub.errors import InvalidRequest, Problem, UdfError, responses
from app.datahub.market import RangeError
from app.datahub.security import AdminDep, client_address
from app.feeds.base import FeedError, UnknownSymbolError
from app.models.market import SUPPORTED_RESOLUTIONS, Resolution, SymbolInfo, normalize_symbol

router = APIRouter(
    prefix="/udf",
    tags=["udf"],
    responses={**responses(UdfError, 400, 404, 429, 503), **responses(InvalidRequest, 422)},
)


@runtime_checkable
class MarksSource(Protocol):
    """Anything that can list our fills as UDF marks (the execution engine)."""

    async def marks(self, symbol: str, start: int, end: int) -> list[dict[str, Any]]: ...


INTRADAY_MULTIPLIERS = [r.value for r in Resolution if r.intraday]


def udf_error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"s": "error", "errmsg": message}, status_code=status)


@router.get("/config")
async def config(services: ServicesDep) -> dict[str, Any]:
    exchanges = sorted({info.exchange for info in await services.feed.search("", limit=1000)})
    return {
        "supported_resolutions": SUPPORTED_RESOLUTIONS,
        "supports_group_request": False,
        "supports_marks": True,
        "supports_search": True,
        "supports_timescale_marks": False,
        "supports_time": True,
        "exchanges": [{"value": "", "name": "All Exchanges", "desc": ""}]
        + [{"value": e, "name": e, "desc": e} for e in exchanges],
        "symbols_types": [
            {"name": "All types", "value": ""},
            {"name": "Stock", "value": "stock"},
            {"name": "Fund", "value": "fund"},
        ],
    }


def _symbol_payload(info: SymbolInfo) -> dict[str, Any]:
    return {
        "name": info.symbol,
        "ticker": info.symbol,
        "description": info.description,
        "type": info.type,
        "session": info.session,
        "exchange": info.exchange,
        "listed_exchange": info.exchange,
        "timezone": info.timezone,
        "format": "price",
        "minmov": info.minmov,
        "pricescale": info.pricescale,
        "has_intraday": True,
        "has_daily": True,
        "has_weekly_and_monthly": True,
        "intraday_multipliers": INTRADAY_MULTIPLIERS,
        "supported_resolutions": SUPPORTED_RESOLUTIONS,
        "volume_precision": 0,
        "data_status": "streaming",
        "currency_code": info.currency,
        "sector": info.sector,
    }


@router.get("/symbols", response_model=None)
async def symbols(
    services: ServicesDep, request: Request, symbol: str = ""
) -> dict[str, Any] | JSONResponse:
    if not symbol.strip():
        return udf_error("symbol is required")
    client = client_address(request, services.settings.trusted_proxies)
    info = await services.market.symbols.resolve(normalize_symbol(symbol), client)
    if info is None:
        return udf_error("unknown_symbol", 404)
    return _symbol_payload(info)


@router.get("/search")
async def search(
    services: ServicesDep,
    query: str = "",
    type: str = "",
    exchange: str = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 30,
) -> list[dict[str, str]]:
    hits = await services.feed.search(query, limit=1000)
    out = []
    for info in hits:
        if (type and info.type != type) or (exchange and info.exchange != exchange):
            continue
        out.append(
            {
                "symbol": info.symbol,
                "full_name": f"{info.exchange}:{info.symbol}",
                "description": info.description,
                "exchange": info.exchange,
                "ticker": info.symbol,
                "type": info.type,
            }
        )
        if len(out) >= limit:
            break
    return out


def _parse_int(name: str, raw: str | None, *, required: bool) -> int | None:
    if raw is None or raw == "":
        if required:
            raise ValueError(f"{name} is required (Unix seconds)")
        return None
    try:
        value = float(raw)
        if not math.isfinite(value) or abs(value) > 1e12:
            raise ValueError
        return int(value)
    except ValueError:
        raise ValueError(f"{name} must be a number of Unix seconds, got {raw[:40]!r}") from None


@router.get("/history", response_model=None)
async def history(
    services: ServicesDep,
    request: Request,
    symbol: str = "",
    resolution: str = "",
    from_: Annotated[str | None, Query(alias="from")] = None,
    to: str | None = None,
    countback: str | None = None,
) -> Response:
    """Bars with ``from <= time < to``; ``countback`` (when given) wins over ``from``."""
    try:
        if not symbol.strip():
            raise ValueError("symbol is required")
        res = Resolution.parse(resolution or "")
        start = _parse_int("from", from_, required=countback is None)
        end = _parse_int("to", to, required=True)
        count = _parse_int("countback", countback, required=False)
    except ValueError as exc:
        return udf_error(str(exc))
    assert end is not None
    sym = normalize_symbol(symbol)
    client = client_address(request, services.settings.trusted_proxies)
    if await services.market.symbols.resolve(sym, client) is None:
        return udf_error(f"unknown symbol {sym!r}", 404)
    try:
        body = await services.market.history_body(sym, res, start or 0, end, count)
    except RangeError as exc:
        return udf_error(str(exc))
    except UnknownSymbolError as exc:
        return udf_error(str(exc), 404)
    except FeedError as exc:
        return udf_error(f"feed unavailable: {exc}", 503)
    return Response(body, media_type="application/json")


@router.get("/time", response_class=PlainTextResponse)
async def server_time() -> str:
    return str(int(time.time()))


@router.get("/quotes", response_model=None)
async def quotes(services: ServicesDep, symbols: str = "") -> dict[str, Any] | JSONResponse:
    wanted = list(dict.fromkeys(normalize_symbol(s) for s in symbols.split(",") if s.strip()))
    if not wanted:
        return udf_error("symbols is required")
    cap = services.settings.max_symbols_per_request
    if len(wanted) > cap:
        return udf_error(f"at most {cap} symbols per request")
    try:
        found = await services.market.quotes(wanted)
    except FeedError as exc:
        return udf_error(f"feed unavailable: {exc}", 503)
    data = []
    for sym in wanted:
        q = found.get(sym)
        if q is None:
            data.append({"s": "error", "n": sym, "v": {}})
            continue
        data.append(
            {
                "s": "ok",
                "n": sym,
                "v": {
                    "ch": q.change,
                    "chp": q.change_pct,
                    "short_name": sym,
                    "exchange": "",
                    "description": sym,
                    "lp": q.last,
                    "ask": q.ask,
                    "bid": q.bid,
                    "spread": round(q.ask - q.bid, 4),
                    "open_price": q.open,
                    "high_price": q.high,
                    "low_price": q.low,
                    "prev_close_price": q.prev_close,
                    "volume": q.volume,
                },
            }
        )
    return {"s": "ok", "d": data}


@router.get(
    "/marks",
    response_model=None,
    dependencies=[AdminDep],
    responses=responses(Problem, 401, 503),
)
async def marks(
    services: ServicesDep,
    symbol: str = "",
    from_: Annotated[str | None, Query(alias="from")] = None,
    to: str | None = None,
    resolution: str = "",
) -> dict[str, list[Any]] | JSONResponse:
    """Our fills as chart marks (columnar, as the UDF spec allows); private: ``X-API-Key``."""
    try:
        start = _parse_int("from", from_, required=True)
        end = _parse_int("to", to, required=True)
    except ValueError as exc:
        return udf_error(str(exc))
    assert start is not None and end is not None
    source = services.extras.get("marks")
    rows: list[dict[str, Any]] = []
    if isinstance(source, MarksSource):
        rows = await source.marks(normalize_symbol(symbol), start, end)
    columns = ["id", "time", "color", "text", "label", "labelFontColor", "minSize"]
    return {c: [row[c] for row in rows] for c in columns}
