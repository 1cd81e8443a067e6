"""The journal's plan: a pure function from stored days and new fills to the writes."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from app.journal.analytics import realise
from app.journal.client import TradeNoteUser
from app.journal.ledger import template_csv
from app.journal.plan import JournalConfig, Stored, fills_by_day, needed_days, plan_sync
from app.journal.tradenote import day_unix
from app.models.orders import Fill, Intent

NY = ZoneInfo("America/New_York")
CONFIG = JournalConfig(username="trader", tz=NY)
USER = TradeNoteUser(object_id="u1", username="trader")
D1, D2 = date(2025, 3, 12), date(2025, 3, 13)
TD1, TD2 = day_unix(D1, NY), day_unix(D2, NY)


def fill(n: int, intent: Intent, qty: int, price: float, day: date, hh: int, account: str = "a",
         symbol: str = "AAPL") -> Fill:  # fmt: skip
    t = datetime(day.year, day.month, day.day, hh, 0, tzinfo=NY).timestamp()
    return Fill(id=f"f{n}", order_id=f"o{n}", broker="paper", account=account, symbol=symbol,
                intent=intent, quantity=qty, price=price, time=t)  # fmt: skip


def loaded(stored: Stored, by_day: dict[int, list[Fill]]) -> Stored:
    docs, eod = needed_days(by_day, stored.journaled)
    stored.docs_loaded |= docs
    stored.eod_loaded |= eod
    return stored


def test_new_days_are_created_owner_only_with_every_account_declared() -> None:
    fills = [fill(1, Intent.BUY, 10, 5.0, D1, 10, "b"), fill(2, Intent.SELL, 10, 6.0, D1, 11, "b"),
             fill(3, Intent.BUY, 5, 9.0, D2, 10, "a", "MSFT")]  # fmt: skip
    by_day = fills_by_day(fills, CONFIG)
    plan = plan_sync(loaded(Stored(journaled=set()), by_day), by_day, CONFIG, USER)
    assert plan.complete and plan.accounts == ["a", "b"]
    assert [w.day for w in plan.writes] == [TD1, TD2]
    for write in plan.writes:
        body = write.request["body"]
        assert write.request["method"] == "POST" and body["dateUnix"] == write.day
        assert body["ACL"] == {"u1": {"read": True, "write": True}}
        assert all(t["td"] == write.day for t in body["trades"])
    assert plan.writes[1].carry_out  # MSFT is still open at the end of day 2
    assert plan.executions_added == 3


def test_a_late_fill_cascades_into_the_next_journaled_day_once_it_is_loaded() -> None:
    first = [fill(1, Intent.BUY, 10, 5.0, D1, 10)]
    by_day = fills_by_day(first, CONFIG)
    plan = plan_sync(loaded(Stored(journaled=set()), by_day), by_day, CONFIG, USER)
    carry = plan.writes[0].carry_out
    stored = Stored(journaled={TD1, TD2}, eod={TD1: carry, TD2: {}})
    stored.docs = {TD1: {"objectId": "d1", **plan.writes[0].request["body"]}}
    # a late sell on day 1 closes the position day 2 was continuing
    late = fills_by_day([fill(2, Intent.SELL, 10, 6.0, D1, 15)], CONFIG)
    stored = loaded(stored, late)
    plan = plan_sync(stored, late, CONFIG, USER)
    assert not plan.complete and plan.missing_docs == {TD2}  # asks; wrote nothing yet
    stored.docs_loaded.add(TD2)
    stored.docs[TD2] = {"objectId": "d2", "executions": []}
    plan = plan_sync(stored, late, CONFIG, USER)
    assert plan.missing_eod == {TD2}  # day 2's own closing positions, to compare
    stored.eod_loaded.add(TD2)
    plan = plan_sync(stored, late, CONFIG, USER)
    assert plan.complete
    assert [(w.day, w.request["method"]) for w in plan.writes] == [(TD1, "PUT"), (TD2, "PUT")]
    assert plan.writes[0].carry_out == {} and plan.executions_added == 1


def test_planning_is_pure() -> None:
    by_day = fills_by_day([fill(1, Intent.BUY, 10, 5.0, D1, 10)], CONFIG)
    stored = loaded(Stored(journaled=set()), by_day)
    a = plan_sync(stored, by_day, CONFIG, USER)
    b = plan_sync(stored, by_day, CONFIG, USER)
    assert [w.request for w in a.writes] == [w.request for w in b.writes]
    assert stored.docs == {} and stored.eod == {}


def test_one_trading_day_for_pre_regular_and_after_market_fills_in_any_user_zone() -> None:
    """08:00, 12:00 and 19:00 New York on Tuesday are Tuesday's document, 10:00 Wednesday
    is Wednesday's, wherever the TradeNote user lives; analytics' daily P&L agrees."""
    tue, wed = date(2026, 11, 24), date(2026, 11, 25)
    fills = [
        fill(1, Intent.BUY, 10, 100.0, tue, 8).model_copy(update={"commission": 1.0}),
        fill(2, Intent.SELL, 4, 102.0, tue, 12),  # +8
        fill(3, Intent.SELL, 4, 103.0, tue, 19),  # +12: 01:00 Wednesday in Berlin
        fill(4, Intent.SELL, 2, 99.0, wed, 10),  # -2
    ]
    realised = realise(fills, "XNYS")
    assert realised.daily_gross == {tue: 20.0, wed: -2.0}
    assert realised.daily == {tue: 19.0, wed: -2.0}
    for zone in (NY, ZoneInfo("Europe/Berlin"), ZoneInfo("Asia/Tokyo")):
        config = JournalConfig(username="trader", tz=zone)
        by_day = fills_by_day(fills, config)
        assert by_day == {day_unix(tue, zone): fills[:3], day_unix(wed, zone): fills[3:]}
        plan = plan_sync(loaded(Stored(journaled=set()), by_day), by_day, config, USER)
        assert plan.complete and [w.day for w in plan.writes] == sorted(by_day)
        for write, day in zip(plan.writes, (tue, wed), strict=True):
            body = write.request["body"]
            assert body["date"]["iso"].startswith(day.isoformat())
            assert body["pAndL"]["grossProceeds"] == pytest.approx(realised.daily_gross[day])
            assert body["pAndL"]["netProceeds"] == pytest.approx(realised.daily[day])
        csv = template_csv(fills, config.account_for, zone, config.calendar).splitlines()
        assert [row.split(",")[1] for row in csv[1:]] == ["11/24/2026"] * 3 + ["11/25/2026"]
