"""Options in a backtest session: chosen from the simulated feed's chains at the simulated
time, and settled at their expiry by the simulated clock (the same as every time)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson

from app.backtest.runner import BacktestConfig, Session
from app.models.occ import parse_occ
from app.risk.limits import parse_limits
from tests.support.limits import PERMISSIVE

START = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)  # a Monday, in the session


async def run_once() -> tuple[str, list[tuple[str, float]], float]:
    config = BacktestConfig(
        jobs=[], start=START, end=START + timedelta(days=10), limits=parse_limits(PERMISSIVE)
    )
    async with Session(config, ["SPY"]) as session:
        body = {"ticker": "SPY", "action": "buy", "quantity": 1, "alert_id": "c1",
                "option": {"right": "call", "dte": 3, "atm_offset": -2}}  # fmt: skip
        answer = await session.client.post_alert(orjson.dumps(body), "c1")
        decision = answer.body
        assert decision["status"] == "accepted", decision
        contract = decision["option"]["legs"][0]["symbol"]
        expiry = parse_occ(contract).expiry
        assert session.book.position(contract) == 1
        # to the session after the expiry: quotes every minute while the call is held
        after = datetime.combine(expiry + timedelta(days=3), datetime.min.time(), UTC)
        await session.advance(after.timestamp() + 15 * 3600, ["SPY"])
        held = [(p.symbol, p.quantity) for p in session.book.positions()]
        return contract, held, round(session.book.cash, 2)


async def test_an_option_is_chosen_by_sim_time_and_settles_at_its_expiry() -> None:
    contract, held, cash = await run_once()
    assert contract not in dict(held)  # settled: worthless, or exercised into shares
    assert all(symbol == "SPY" and qty in (0, 100) for symbol, qty in held)
    assert (contract, held, cash) == await run_once()  # the same every time
