"""One backtest: kairos jobs fired on their schedules over a date range, on the simulated
clock, through the account's engine and the paper broker (see the package docstring).

The engine keeps its state in a Redis of the run's own (a fresh ``redis-server`` in a
temporary directory, as ``trader-ops run`` starts one): the store's scripts and the paper
broker's records are the live ones, which is what makes the run the live path rather than
a second implementation of it. Fire times come from each job's own schedule (its cron on
its exchange calendar, sessions, holidays and early closes included).
"""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from app.backtest.bars import BarFiles
from app.backtest.client import BacktestClient, BarSource
from app.backtest.clock import SimClock
from app.brokers.paper import PaperBroker
from app.embedded import EmbeddedRedis
from app.execution.engine import ExecutionEngine
from app.execution.sizing import SizingConfig
from app.execution.store import ExecutionStore
from app.feeds.simulated import SimulatedFeed
from app.kairos.jobs import LoadedJob
from app.kairos.runner import Kairos, RunReport
from app.models.instruments import multiplier_of
from app.models.market import Quote
from app.models.orders import Fill, Order
from app.options.chains import OptionChains
from app.portfolio.book import AccountBook
from app.risk.engine import RiskEngine
from app.risk.limits import RiskLimits
from app.sessions import get_sessions

Progress = Callable[[int, int, datetime], None]
After = Callable[["Session", "BacktestResult"], Awaitable[None]]


@dataclass
class BacktestResult:
    """What a run produced, in the order it happened."""

    name: str
    start: datetime
    end: datetime
    starting_cash: float
    decisions: list[dict[str, Any]] = field(default_factory=list)
    orders: list[Order] = field(default_factory=list)
    fills: list[Fill] = field(default_factory=list)
    equity: list[tuple[float, float]] = field(default_factory=list)  # (epoch s, equity)
    runs: int = 0
    errors: list[str] = field(default_factory=list)
    positions: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class BacktestConfig:
    jobs: Sequence[LoadedJob]
    start: datetime
    end: datetime
    limits: RiskLimits = field(default_factory=RiskLimits)
    sizing: SizingConfig = field(default_factory=SizingConfig)
    cash: float = 100_000.0
    seed: int = 42
    slippage_bps: float = 1.0
    commission_per_share: float = 0.0
    market_hours: str = "exchange"
    name: str = "backtest"
    quote_seconds: int = 60  # quotes between runs, while orders or positions are open
    bars: Path | None = None  # bar files (``bars.py``); None: the simulated feed


def fire_times(kairos: Kairos, start: datetime, end: datetime) -> list[tuple[datetime, str]]:
    """Every job's fires in (start, end], in time order (jobs by name at the same time)."""
    times = [
        (t, name)
        for name, schedule in kairos.schedules.items()
        if kairos.jobs[name].spec.enabled
        for t in schedule.fires(start, end)
    ]
    return sorted(times)


class Session:
    """The live path on a simulated clock: the account's engine and paper broker on a Redis
    of the run's own, the simulated feed, and the clock they all read. Backtests and
    replays drive it: ``advance`` moves time (quotes mark the book, fill resting orders
    and trigger brackets on the way), ``client`` takes alerts as the datahub would."""

    def __init__(
        self, config: BacktestConfig, symbols: Sequence[str], redis_url: str | None = None
    ) -> None:
        self.config = config
        self.symbols = sorted(set(symbols))
        self.redis_url = redis_url
        self.clock = SimClock(config.start.timestamp())
        self.feed: BarSource = (
            BarFiles(config.bars, self.symbols, self.clock.time)
            if config.bars is not None
            else SimulatedFeed(self.symbols, seed=config.seed, clock=self.clock.time)
        )
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._server: EmbeddedRedis | None = None

    async def quote(self, symbol: str) -> Quote | None:
        return (await self.feed.quotes([symbol])).get(symbol)

    async def __aenter__(self) -> Session:
        if self.redis_url is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="traderops-backtest-")
            self._server = EmbeddedRedis(Path(self._tmp.name), with_parent=True)
            self._server.start()
            self.redis_url = self._server.url
        self.redis = Redis.from_url(self.redis_url)
        c = self.config
        self.book = AccountBook(account="default", cash=0.0, multiplier_of=multiplier_of)
        mode: Any = c.market_hours
        risk = RiskEngine(c.limits, clock=self.clock.time, market_hours=mode, book=self.book)
        self.engine = ExecutionEngine(
            ExecutionStore(self.redis),
            PaperBroker(
                self.redis,
                self.quote,
                slippage_bps=c.slippage_bps,
                commission_per_share=c.commission_per_share,
                clock=self.clock.time,
            ),
            risk,
            self.quote,
            sizing=c.sizing,
            starting_cash=c.cash,
            clock=self.clock.time,
            expire_every=None,  # by the simulated clock: ``_quote_all``
            chains=(  # option alerts: the simulated feed's chains, cached by the run's clock
                OptionChains(self.feed, clock=self.clock.time)
                if isinstance(self.feed, SimulatedFeed)
                else None
            ),
        )
        self.client = BacktestClient(self.feed, self.engine, self.clock, c.end.timestamp())
        self.sessions = get_sessions(risk.calendar)  # when quotes come between runs
        await self.engine.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.engine.close()
            await self.feed.close()
            await self.redis.aclose()
        finally:
            if self._server is not None:
                self._server.stop()
            if self._tmp is not None:
                self._tmp.cleanup()

    async def advance(self, when: float, symbols: Sequence[str] | None = None) -> None:
        """Move the clock to ``when``, a quote of each symbol every ``quote_seconds`` of the
        account's sessions on the way (what live quotes do between two runs: marks,
        resting orders, brackets; none while its exchange is closed)."""
        step = self.config.quote_seconds
        names = self.symbols if symbols is None else symbols
        t = self.clock.time()
        if step > 0 and (self.engine.orders or self.engine.book.open_positions):
            t = (int(t) // step + 1) * step
            while t < when:
                if self.sessions.is_open(t):
                    await self._quote_all(t, names)
                    t += step
                else:  # no quotes while the exchange is closed: on to its next open
                    t = max(t + step, self.sessions.next_open(t) or when)
        await self._quote_all(when, names)

    async def _quote_all(self, t: float, symbols: Sequence[str]) -> None:
        self.clock.set(t)
        for symbol in symbols:
            await self.engine.on_quote(self.feed.quote_at(symbol, t))
        await self.engine.settle()
        if await self.engine.expirer.run_once():  # contracts past their expiry, settled
            await self.engine.settle()

    async def collect(self, result: BacktestResult) -> BacktestResult:
        """Orders, fills, decisions and positions as the run left them."""
        store = self.engine.store
        result.decisions = self.client.decisions
        result.orders = sorted(
            await store.recent_orders(1_000_000), key=lambda o: (o.created_at, o.id)
        )
        result.fills = sorted(
            await store.fills(1_000_000), key=lambda f: (f.time, f.order_id, f.id)
        )
        result.positions = [p.model_dump(mode="json") for p in self.book.positions()]
        return result


async def run_backtest(
    config: BacktestConfig,
    *,
    redis_url: str | None = None,
    progress: Progress | None = None,
    after: After | None = None,
) -> BacktestResult:
    """Run ``config``'s jobs over its dates (a Redis of its own unless ``redis_url``);
    ``after`` gets the session and the result before the session ends (``--journal``)."""
    symbols = [s for j in config.jobs for s in j.spec.symbols]
    result = BacktestResult(config.name, config.start, config.end, config.cash)
    async with Session(config, symbols, redis_url) as session:
        reports: list[RunReport] = []
        kairos = Kairos(
            list(config.jobs),
            session.client,  # type: ignore[arg-type]
            clock=session.clock,
            on_report=reports.append,
        )
        fires = fire_times(kairos, config.start, config.end)
        for i, (when, name) in enumerate(fires):
            await session.advance(when.timestamp(), kairos.jobs[name].spec.symbols)
            report = await kairos.run_job(name, now=when, nominal=when)
            if report.outcome != "ok":
                result.errors.append(f"{when.isoformat()} {name}: {report.outcome} {report.error}")
            await session.engine.settle()
            result.equity.append((session.clock.time(), round(session.book.equity, 2)))
            if progress is not None:
                progress(i + 1, len(fires), when)
        result.runs = len(fires)
        await session.collect(result)
        if after is not None:
            await after(session, result)
    return result
