"""A small in-process datahub for kairos tests and benchmarks (aiohttp on loopback).

It speaks the datahub contracts kairos uses: UDF history, quotes, positions, account and
the signed webhook. It verifies the HMAC, the admin key, claims alert ids like the real
intake (a repeat returns the first answer), and can fail on purpose to exercise retries.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from app.feeds.simulated import SimulatedFeed
from app.kairos.alerts import verify
from app.models.market import Bar, Resolution


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class FakeDatahub:
    hmac_key: bytes
    admin_key: str | None = None
    feed: SimulatedFeed | None = None
    bars: dict[str, list[Bar]] = field(default_factory=dict)
    quotes: dict[str, dict[str, Any]] = field(default_factory=dict)
    positions: list[dict[str, Any]] = field(default_factory=list)
    account: dict[str, Any] = field(
        default_factory=lambda: {"equity": 100_000.0, "cash": 100_000.0}
    )
    #: answer the next N webhook posts with 503 (retries), or always with this 4xx
    fail_webhook_times: int = 0
    webhook_status: int | None = None
    alerts: list[dict[str, Any]] = field(default_factory=list)  # accepted, unique
    posts: int = 0  # every POST that reached the handler
    history_calls: int = 0
    port: int = 0
    _claimed: dict[str, dict[str, Any]] = field(default_factory=dict)
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> FakeDatahub:
        app = web.Application()
        app.router.add_get("/udf/history", self._history)
        app.router.add_get("/api/v1/quotes", self._quotes)
        app.router.add_get("/api/v1/positions", self._positions)
        app.router.add_get("/api/v1/account", self._account)
        app.router.add_post("/webhook/tradingview", self._webhook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = self.port or _free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDatahub:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @staticmethod
    def _json(data: Any, status: int = 200) -> web.Response:
        return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")

    def _admin_ok(self, request: web.Request) -> bool:
        return self.admin_key is None or request.headers.get("X-API-Key") == self.admin_key

    async def _history(self, request: web.Request) -> web.Response:
        self.history_calls += 1
        q = request.query
        symbol, res = q["symbol"], Resolution.parse(q["resolution"])
        start, end = int(q["from"]), int(q["to"])
        countback = int(q["countback"]) if q.get("countback") else None
        if self.feed is not None:
            bars = self.feed.history_at(symbol, res, start, end, countback, now=end).bars
        else:
            bars = [b for b in self.bars.get(symbol, []) if b.time < end]
            bars = bars[-countback:] if countback else [b for b in bars if b.time >= start]
        if not bars:
            return self._json({"s": "no_data"})
        return self._json(
            {
                "s": "ok",
                "t": [b.time for b in bars],
                "o": [b.open for b in bars],
                "h": [b.high for b in bars],
                "l": [b.low for b in bars],
                "c": [b.close for b in bars],
                "v": [b.volume for b in bars],
            }
        )

    async def _quotes(self, request: web.Request) -> web.Response:
        if not self._admin_ok(request):
            return self._json({"error": "bad key"}, 401)
        wanted = [s for s in request.query.get("symbols", "").split(",") if s]
        known = {s: self.quotes[s] for s in wanted if s in self.quotes}
        return self._json({"quotes": known, "unknown": [s for s in wanted if s not in known]})

    async def _positions(self, request: web.Request) -> web.Response:
        if not self._admin_ok(request):
            return self._json({"error": "bad key"}, 401)
        return self._json({"positions": self.positions})

    async def _account(self, request: web.Request) -> web.Response:
        if not self._admin_ok(request):
            return self._json({"error": "bad key"}, 401)
        return self._json(self.account)

    async def _webhook(self, request: web.Request) -> web.Response:
        self.posts += 1
        raw = await request.read()
        if not verify(self.hmac_key, raw, request.headers.get("X-Signature", "")):
            return self._json({"error": "bad signature"}, 401)
        if self.fail_webhook_times > 0:
            self.fail_webhook_times -= 1
            return self._json({"error": "try again"}, 503)
        if self.webhook_status is not None:
            return self._json({"error": "refused"}, self.webhook_status)
        body = orjson.loads(raw)
        first = self._claimed.get(body["alert_id"])
        if first is not None:
            return self._json({**first, "duplicate": True})
        answer = {
            "status": "accepted",
            "alert_id": body["alert_id"],
            "order_id": f"o{len(self.alerts)}",
        }
        self._claimed[body["alert_id"]] = answer
        self.alerts.append(body)
        return self._json(answer)


def bars_from(
    closes: Sequence[float],
    volumes: Sequence[float] | None = None,
    *,
    start: int,
    step: int = 300,
) -> list[Bar]:
    """Fixture bars from closes (open = previous close, high/low around both)."""
    out: list[Bar] = []
    prev = closes[0]
    for i, c in enumerate(closes):
        v = volumes[i] if volumes is not None else 1000.0
        hi, lo = max(prev, c) * 1.001, min(prev, c) * 0.999
        out.append(Bar(time=start + i * step, open=prev, high=hi, low=lo, close=c, volume=v))
        prev = c
    return out


def positions_payload(book: Mapping[str, tuple[float, float]]) -> list[dict[str, Any]]:
    """``{symbol: (quantity, last_price)}`` as the admin API's positions rows."""
    return [
        {"symbol": s, "quantity": q, "avg_price": p, "last_price": p, "market_value": q * p}
        for s, (q, p) in book.items()
    ]
