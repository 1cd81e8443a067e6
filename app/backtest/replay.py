"""Alerts replayed through the live path on a simulated clock, and set beside what the
live stack did with them (issue 24, item 2).

Sources: TradingView's alert log export (``tvlog.py``) or an account's own stored alerts
(the intake appends each alert, as routed to the account with its ``alert_id`` and sizing
rule, to the account's ``alerts-in`` stream, which keeps them after they are decided, up
to its length cap). Each alert, in time order, moves the ``Session``'s clock to its time
(quotes of its ticker and of the open positions on the way), then is decided as the
webhook and the account's engine decide it. An alert without ``alert_id`` gets the id the
intake gives it (``Intake.identify``): a digest of its content less the passphrase and the
moment, here its trigger time (live: its arrival), so ``compare`` matches such an id to
the live one with the same digest nearest in time.

``compare`` reads the live record of an account from its Redis (``ExecutionStore``): the
decision of each replayed alert, its orders and their fills, and lists the differences.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from pydantic import ValidationError
from redis.asyncio import Redis

from app.backtest.runner import BacktestConfig, BacktestResult, Session
from app.bus import Keys
from app.execution.intake import content_digest
from app.execution.sizing import SizingRule
from app.execution.store import ExecutionStore
from app.journal.analytics import realise
from app.models.alerts import Alert, Decision
from app.models.orders import Fill, Order

MATCH_SECONDS = 120.0  # an id-less alert's live copy arrives within this of its trigger
PRICE_TOLERANCE = 0.005


@dataclass(frozen=True, slots=True)
class ReplayAlert:
    time: float  # epoch seconds: when it fired (or was taken in, for stored alerts)
    body: bytes  # as posted: no passphrase, ``alert_id`` set
    alert_id: str
    ticker: str
    action: str
    source: str  # "line 7" (a log row) or "alerts-in 1700000000000-0"
    derived: bool = False  # the id was derived from content and time
    sizing: SizingRule | None = None


@dataclass(slots=True)
class Replayed:
    alert: ReplayAlert
    decision: dict[str, Any] | None  # None: refused as the webhook would (``error``)
    error: str = ""


@dataclass(slots=True)
class Replay:
    result: BacktestResult
    rows: list[Replayed] = field(default_factory=list)
    rejected: list[tuple[str, float | None, str]] = field(default_factory=list)  # source, t, why


def prepare(when: float, body: bytes, source: str) -> ReplayAlert:
    """A message as the webhook takes it in: passphrase dropped, ``alert_id`` given (see
    the module docstring). ``ValueError`` when the webhook would refuse it."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ValueError("the alert message is not JSON") from None
    if not isinstance(data, dict):
        raise ValueError("the alert message must be a JSON object")
    data.pop("passphrase", None)
    try:
        alert = Alert.model_validate(data)
    except ValidationError as exc:
        raise ValueError(f"invalid alert: {exc.errors()[0]['msg']}") from None
    derived = alert.alert_id is None
    if derived:
        digest = content_digest(orjson.dumps(data, option=orjson.OPT_SORT_KEYS))
        data["alert_id"] = f"h-{digest[:20]}-{round(when * 1000)}"
    return ReplayAlert(
        time=when,
        body=orjson.dumps(data, option=orjson.OPT_SORT_KEYS),
        alert_id=str(data["alert_id"]).strip(),
        ticker=alert.ticker,
        action=alert.action.value,
        source=source,
        derived=derived,
    )


async def stored_alerts(redis: Redis, account: str, start: float, end: float) -> list[ReplayAlert]:
    """The account's alerts taken in with ``start <= t <= end`` (its ``alerts-in`` stream)."""
    out = []
    entries: Any = await redis.xrange(
        Keys.account(account).alerts_in, f"{int(start * 1000)}", f"{int(end * 1000)}"
    )
    for entry_id, fields in entries:
        eid = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
        try:
            alert = prepare(int(eid.split("-")[0]) / 1000, fields[b"alert"], f"alerts-in {eid}")
            raw_rule = fields.get(b"sizing") or b""
            rule = SizingRule.model_validate_json(raw_rule) if raw_rule else None
        except (KeyError, ValueError):  # (the engine drops such an entry too)
            continue
        out.append(replace(alert, sizing=rule))  # (its id is the live one)
    return out


async def decide(session: Session, alert: ReplayAlert) -> Replayed:
    """One alert, decided as the webhook and the engine decide it at the session's time."""
    if alert.sizing is None:
        answer = await session.client.post_alert(alert.body, alert.alert_id)
        if answer.status != 202:
            return Replayed(alert, None, f"{answer.status} {answer.body.get('detail', '')}")
        return Replayed(alert, answer.body)
    # a stored alert with its route's sizing rule: the engine's call as the service makes it
    decision = await session.engine.handle_alert(
        Alert.model_validate_json(alert.body), alert.sizing
    )
    await session.engine.settle()
    body = orjson.loads(decision.model_dump_json())
    session.client.decisions.append(body)
    return Replayed(alert, body)


async def replay(
    config: BacktestConfig, alerts: Sequence[ReplayAlert], *, redis_url: str | None = None
) -> Replay:
    """Every alert in time order through a ``Session`` (a Redis of its own unless
    ``redis_url``); then on to ``config.end`` (resting orders, brackets)."""
    ordered = sorted(alerts, key=lambda a: a.time)  # stable: source order within a time
    symbols = sorted({a.ticker for a in ordered})
    out = Replay(BacktestResult(config.name, config.start, config.end, config.cash))
    async with Session(config, symbols, redis_url) as session:
        for alert in ordered:
            held = [p.symbol for p in session.book.positions()]
            await session.advance(alert.time, sorted({alert.ticker, *held}))
            out.rows.append(await decide(session, alert))
            out.result.equity.append((session.clock.time(), round(session.book.equity, 2)))
        if ordered and config.end.timestamp() > session.clock.time():
            await session.advance(config.end.timestamp(), symbols)
            out.result.equity.append((session.clock.time(), round(session.book.equity, 2)))
        out.result.runs = len(ordered)
        await session.collect(out.result)
    return out


# -- the live record, and the differences -------------------------------------------------


@dataclass(slots=True)
class Live:
    decisions: dict[str, Decision]
    orders: dict[str, list[Order]]  # alert id -> its orders
    fills: dict[str, list[Fill]]  # alert id -> its orders' fills


async def live_record(
    redis: Redis, account: str, ids: Sequence[str], start: float, end: float
) -> Live:
    """What the account's engine decided (the decisions stream in ``start - MATCH_SECONDS``
    .. ``end + MATCH_SECONDS``, and the stored decision of each of ``ids``), ordered and
    filled."""
    store = ExecutionStore(redis, account)
    decisions: dict[str, Decision] = {}
    lo, hi = int((start - MATCH_SECONDS) * 1000), int((end + MATCH_SECONDS) * 1000)
    entries: Any = await redis.xrange(Keys.ALERTS_STREAM, f"{max(lo, 0)}", f"{hi}")
    for _, fields in entries:
        d = Decision.model_validate_json(fields[b"decision"])
        if d.account in (account, None) and not d.duplicate:
            decisions.setdefault(d.alert_id, d)
    for alert_id in ids:
        if alert_id not in decisions:
            found = await store.alert_decision(alert_id)
            if isinstance(found, Decision):
                decisions[alert_id] = found
    orders: dict[str, list[Order]] = {}
    for order in await store.recent_orders(1_000_000):
        if order.request.alert_id in decisions:
            orders.setdefault(order.request.alert_id, []).append(order)
    by_order = {o.id: a for a, os in orders.items() for o in os}
    fills: dict[str, list[Fill]] = {}
    for fill in await store.fills(1_000_000):
        if fill.order_id in by_order:
            fills.setdefault(by_order[fill.order_id], []).append(fill)
    return Live(decisions, orders, fills)


def match_ids(rows: Sequence[Replayed], live: Live) -> dict[str, str]:
    """Replayed alert id -> the live one: the same id, or for a derived id the live id of
    the same content (``h-<digest>-``) taken in nearest the trigger time."""
    out: dict[str, str] = {}
    taken: set[str] = set()
    for row in rows:
        a = row.alert
        if a.alert_id in live.decisions or not a.derived:
            out[a.alert_id] = a.alert_id
            continue
        prefix = a.alert_id.rsplit("-", 1)[0] + "-"
        near = [
            (abs(int(i.rsplit("-", 1)[1]) / 1000 - a.time), i)
            for i in live.decisions
            if i.startswith(prefix) and i not in taken and i.rsplit("-", 1)[1].isdigit()
        ]
        near = [n for n in near if n[0] <= MATCH_SECONDS]
        if near:
            out[a.alert_id] = min(near)[1]
            taken.add(out[a.alert_id])
    return out


def prices(fills: Sequence[Fill]) -> dict[tuple[str, str], tuple[float, float]]:
    """(symbol, intent) -> (quantity, average price) of ``fills``."""
    sums: dict[tuple[str, str], list[float]] = {}
    for f in fills:
        s = sums.setdefault((f.symbol, f.intent.value), [0.0, 0.0])
        s[0] += float(f.quantity)
        s[1] += float(f.quantity) * f.price
    return {k: (q, round(v / q, 6) if q else 0.0) for k, (q, v) in sums.items()}


def pnl(fills: Sequence[Fill]) -> float:
    """Realised P&L of ``fills`` (FIFO, net of commissions), as the journal computes it."""
    return round(sum(realise(sorted(fills, key=lambda f: (f.time, f.id))).daily.values()), 2)


def _diffs(
    row: Replayed, live_id: str | None, live: Live, ours: list[Fill]
) -> list[dict[str, Any]]:
    a = row.alert
    base = {"alert_id": a.alert_id, "time": a.time, "source": a.source, "ticker": a.ticker}
    theirs = live.decisions.get(live_id) if live_id else None
    if theirs is None:
        return [{**base, "kind": "not_received_live"}]
    out: list[dict[str, Any]] = []
    mine = row.decision or {"status": "refused", "check": None, "quantity": None}
    changed = {
        k: {"replay": mine.get(k), "live": getattr(theirs, k)}
        for k in ("status", "check", "quantity")
        if mine.get(k) != getattr(theirs, k)
    }
    if changed:
        out.append({**base, "kind": "decision", "live_alert_id": live_id, "fields": changed})
    ours_p, theirs_p = prices(ours), prices(live.fills.get(live_id or "", []))
    for key in sorted(set(ours_p) | set(theirs_p)):
        (q1, p1), (q2, p2) = ours_p.get(key, (0.0, None)), theirs_p.get(key, (0.0, None))
        if q1 != q2:
            kind, extra = "fill_quantity", {"replay": q1, "live": q2}
        elif p1 is not None and p2 is not None and abs(p1 - p2) > PRICE_TOLERANCE:
            kind, extra = "fill_price", {"replay": p1, "live": p2, "difference": round(p1 - p2, 6)}
        else:
            continue
        out.append({**base, "kind": kind, "symbol": key[0], "intent": key[1], **extra})
    return out


def compare(run: Replay, live: Live) -> dict[str, Any]:
    """Each replayed alert beside the live decision and fills, the differences, the P&L."""
    ids = match_ids(run.rows, live)
    by_order = {o.id: o.request.alert_id for o in run.result.orders}
    ours: dict[str, list[Fill]] = {}
    for f in run.result.fills:
        ours.setdefault(by_order.get(f.order_id) or "", []).append(f)
    rows, differences = [], []
    for row in run.rows:
        a, live_id = row.alert, ids.get(row.alert.alert_id)
        theirs = live.decisions.get(live_id) if live_id else None
        mine_fills, live_fills = ours.get(a.alert_id, []), live.fills.get(live_id or "", [])
        found = _diffs(row, live_id, live, mine_fills)
        differences += found
        d = row.decision or {}
        rows.append(
            {
                "time": a.time,
                "source": a.source,
                "alert_id": a.alert_id,
                "live_alert_id": live_id if theirs is not None else None,
                "ticker": a.ticker,
                "action": a.action,
                "replay_status": d.get("status", "refused"),
                "replay_check": d.get("check") or row.error or None,
                "replay_quantity": d.get("quantity"),
                "replay_fills": _fills_text(mine_fills),
                "live_status": theirs.status if theirs else None,
                "live_check": theirs.check if theirs else None,
                "live_quantity": theirs.quantity if theirs else None,
                "live_fills": _fills_text(live_fills),
                "differences": "; ".join(sorted({f["kind"] for f in found})),
            }
        )
    matched = {v for k, v in ids.items() if v in live.decisions}
    replayed = [f for r in run.rows for f in ours.get(r.alert.alert_id, [])]
    lived = [f for i in sorted(matched) for f in live.fills.get(i, [])]
    return {
        "alerts": len(run.rows),
        "rejected_rows": [{"source": s, "time": t, "reason": why} for s, t, why in run.rejected],
        "received_live": len(matched),
        "differences": differences,
        "counts": dict(sorted(Counter(d["kind"] for d in differences).items())),
        "pnl": {
            "replay": pnl(replayed),
            "live": pnl(lived),
            "difference": round(pnl(replayed) - pnl(lived), 2),
        },
        "rows": rows,
    }


def _fills_text(fills: Sequence[Fill]) -> str:
    return " ".join(f"{i}:{s} {q:g}@{p:.4f}" for (s, i), (q, p) in sorted(prices(fills).items()))


def compare_csv(report: dict[str, Any]) -> bytes:
    """``compare.csv``: one line per replayed alert (``report['rows']``)."""
    out = io.StringIO()
    rows: list[dict[str, Any]] = report["rows"]
    columns = list(rows[0]) if rows else ["time", "source", "alert_id", "differences"]
    writer = csv.DictWriter(out, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()
