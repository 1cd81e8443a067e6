"""The datahub as kairos sees it, in process: bars and quotes from the feed at the
simulated time, the book from the account's engine, alerts decided by that engine.

Same contract as ``app/kairos/datahub_client.py`` (``history`` gives the last
``countback`` bars starting before ``end``; an alert's answer is an ``AlertResult`` whose
body is the decision), so ``Kairos`` runs unchanged. An alert body is validated by the
same ``Alert`` model the webhook uses; a body the webhook would refuse is a 422 here.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any, Protocol

import orjson
from pydantic import ValidationError

from app.backtest.clock import SimClock
from app.execution.engine import ExecutionEngine
from app.kairos.datahub_client import AlertResult
from app.kairos.models import Account, Position, QuoteSnapshot
from app.models.alerts import Alert
from app.models.market import Bar, History, Quote, Resolution

READ_AHEAD = 7 * 86_400  # how far past the run's time a series is read


class BarSource(Protocol):
    """Where a backtest's bars and quotes come from: the simulated feed, or bar files."""

    def history_at(
        self,
        symbol: str,
        resolution: Resolution,
        start: int,
        end: int,
        countback: int | None,
        *,
        now: float,
    ) -> History: ...

    def quote_at(self, symbol: str, ts: float) -> Quote: ...

    async def quotes(self, symbols: Sequence[str]) -> dict[str, Quote]: ...

    async def close(self) -> None: ...


class BacktestClient:
    admin_key = "backtest"  # strategies see the book, as with the admin key live

    def __init__(
        self, feed: BarSource, engine: ExecutionEngine, clock: SimClock, until: float = 0.0
    ) -> None:
        self.feed = feed
        self.engine = engine
        self.clock = clock
        self.until = until  # the run's end: how far a series is read ahead
        self.decisions: list[dict[str, Any]] = []
        # (symbol, resolution) -> (from, to, bars, their start times)
        self._series: dict[tuple[str, Resolution], tuple[int, int, list[Bar], list[int]]] = {}

    async def history(
        self, symbol: str, resolution: Resolution, *, end: int, countback: int
    ) -> list[Bar]:
        """What ``/udf/history`` answers live. Intraday bars completed by now are the
        same whenever asked, so the run's series is read once and sliced; the forming
        bar and daily bars (whose forming bar live shows as of now) are asked each time."""
        now = self.clock.time()
        span = max(countback * resolution.seconds * 6, 10 * 86_400)
        if not resolution.intraday:
            found = self.feed.history_at(symbol, resolution, end - span, end, countback, now=now)
            return list(found.bars)
        series = self._series.get((symbol, resolution))
        if series is None or end - span < series[0] or end > series[1]:
            series = self._extend(series, symbol, resolution, end - span, end)
            self._series[(symbol, resolution)] = series
        _, _, bars, times = series
        done = bisect.bisect_right(times, min(end, int(now) - resolution.seconds + 1) - 1)
        complete = bars[max(0, done - countback) : done]
        if done < len(bars) and times[done] < end:  # the forming bar, as of now
            forming = self.feed.history_at(symbol, resolution, times[done], end, None, now=now)
            return [*complete, *forming.bars][-countback:]
        return list(complete)

    def _extend(
        self,
        series: tuple[int, int, list[Bar], list[int]] | None,
        symbol: str,
        resolution: Resolution,
        first: int,
        end: int,
    ) -> tuple[int, int, list[Bar], list[int]]:
        """The series read ahead by ``READ_AHEAD`` from where it ends (from ``first`` when it
        does not reach back that far), bars older than ``first`` dropped: a year of minutes
        is read a week at a time, once."""
        last = min(end + READ_AHEAD, max(end, int(self.until)) + resolution.seconds)
        if series is None or first < series[0] or series[1] < first:
            bars = self.feed.history_at(symbol, resolution, first, last, None, now=last).bars
        else:
            keep = bisect.bisect_left(series[3], first)
            ahead = self.feed.history_at(symbol, resolution, series[1], last, None, now=last)
            bars = [*series[2][keep:], *ahead.bars]
        return (first, last, bars, [b.time for b in bars])

    async def quotes(self, symbols: Sequence[str]) -> dict[str, QuoteSnapshot]:
        now = self.clock.time()
        out = {}
        for symbol in symbols:
            q = self.feed.quote_at(symbol, now)
            out[symbol] = QuoteSnapshot(symbol=symbol, last=q.last, bid=q.bid, ask=q.ask)
        return out

    async def positions(self) -> dict[str, Position]:
        return {
            p.symbol: Position(
                symbol=p.symbol,
                quantity=p.quantity,
                avg_price=p.avg_price,
                last_price=p.last_price,
            )
            for p in self.engine.book.positions()
        }

    async def account(self) -> Account:
        state = self.engine.book.state()
        return Account(equity=state.equity, cash=state.cash, buying_power=state.buying_power)

    async def post_alert(
        self, raw: bytes, alert_id: str, *, webhook: str | None = None
    ) -> AlertResult:
        try:
            alert = Alert.model_validate_json(raw)
        except ValidationError as exc:
            body = {"detail": "invalid alert", "errors": exc.errors(include_url=False)}
            return AlertResult(alert_id, 422, False, body)
        decision = await self.engine.handle_alert(alert)
        await self.engine.settle()
        body = decision.model_dump(mode="json")
        self.decisions.append(body)
        return AlertResult(alert_id, 202, True, orjson.loads(orjson.dumps(body)))

    async def close(self) -> None:
        return None
