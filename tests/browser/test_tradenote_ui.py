"""TradeNote's own UI (19.0.3, real server on PostgreSQL) in headless Chromium, logged in as
the journal's user: the dashboard, calendar and daily pages show what our analytics API
reports for the same fills. A day document with a wrong ``td`` makes the check fail.

TradeNote's index.html loads Bootstrap, Popper, Font Awesome, Unicons and Quill from
cdn.jsdelivr.net; the test answers those URLs from the same packages installed from npm
(``tests/tradenote/cdn``, ``scripts/setup/35-tradenote.sh``) and aborts every other
request that would leave loopback.
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from app.journal.analytics import analytics
from app.journal.tradenote import day_unix
from tests.browser.test_console import CHROMIUM_ARGS
from tests.integration.test_journal_options_tradenote import CALL, PUT, option_fills
from tests.integration.test_journal_oracle import (
    D1,
    D2,
    NY,
    journal_one_by_one,
    journal_user,
    session_fills,
)
from tests.servers import IN_CI, require_binary
from tests.tradenote.server import TradeNoteServer, tradenote

try:
    from playwright.async_api import Browser, Page, Route, async_playwright
    from playwright.async_api import TimeoutError as PlaywrightTimeout
except ImportError:  # pragma: no cover - depends on the dev environment
    if IN_CI:
        raise
    pytest.skip("playwright (Python) not installed", allow_module_level=True)

__all__ = ["journal_user", "tradenote"]

CDN = Path(__file__).resolve().parents[1] / "tradenote" / "cdn" / "node_modules"
CDN_URL = re.compile(r"https://cdn\.jsdelivr\.net/npm/(@[^/@]+/[^/@]+|[^/@]+)(?:@[^/]+)?/(.+)")
PAGE_TIMEOUT_MS = 20_000
JournalUser = tuple[dict[str, Any], Any]


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    chromium = require_binary("chromium")
    if not (CDN / "bootstrap").is_dir():
        message = f"TradeNote's CDN packages are not installed in {CDN.parent} (make setup)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    async with async_playwright() as pw:
        b = await pw.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS, timeout=30_000
        )
        try:
            yield b
        finally:
            await b.close()


async def _route(route: Route) -> None:
    url = route.request.url
    match = CDN_URL.match(url.split("?")[0])
    if match and (CDN / match.group(1) / match.group(2)).is_file():
        await route.fulfill(path=str(CDN / match.group(1) / match.group(2)))
    elif url.startswith("http://127.0.0.1:"):
        await route.continue_()
    else:
        await route.abort()


async def logged_in(browser: Browser, tradenote: TradeNoteServer, user: dict[str, Any]) -> Page:
    """TradeNote's login form, then March 2025 as the selected range (as the filter would)."""
    page = await browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    await page.route("**/*", _route)
    await page.goto(f"{tradenote.base_url}/")
    await page.fill("#inputEmail", user["username"])
    await page.fill("#inputPassword", user["password"])
    await page.click("button[type=submit]")
    await page.wait_for_url("**/dashboard")
    month = {"start": day_unix(date(2025, 3, 1), NY), "end": day_unix(date(2025, 4, 1), NY) - 1}
    await page.evaluate(
        """(m) => {
            const r = JSON.stringify(m);
            localStorage.setItem('selectedDateRange', r);
            localStorage.setItem('selectedMonth', r);
            localStorage.setItem('selectedPeriodRange',
                JSON.stringify({...m, value: 'custom', label: 'Custom'}));
        }""",
        month,
    )
    return page


async def show(
    page: Page, base_url: str, path: str, gross_net: str, ready: str | re.Pattern[str]
) -> str:
    await page.evaluate("(v) => localStorage.setItem('selectedGrossNet', v)", gross_net)
    await page.goto(f"{base_url}/{path}")
    await page.get_by_text(ready).first.wait_for()
    await page.wait_for_timeout(500)  # the last figures render after the first
    return await page.inner_text("body")


def money(text: str) -> float:
    return float(text.replace("$", "").replace(",", "").replace("(", "-").replace(")", ""))


def dashboard_cumulated(body: str) -> float:
    match = re.search(r"(-?\$-?[\d,.]+)\s*\nCumulated P&L", body)
    assert match, body[:1500]
    return money(match.group(1))


def daily_figures(body: str, day: date, label: str) -> dict[str, float]:
    """The daily page's summary row for one day: P&L, trades, wins, losses, fees."""
    heading = day.strftime("%a %-d %B %Y")
    assert heading in body, f"{heading} not on the daily page:\n{body[:1500]}"
    section = body.split(heading, 1)[1]
    figures: dict[str, float] = {}
    match = re.match(rf"\s*{re.escape(label)}: (-?\$-?[\d,.]+)", section)
    assert match, f"{label} for {heading} not found:\n{section[:800]}"
    figures[label] = money(match.group(1))
    for name in ("Executions", "Trades", "Wins", "Losses", "Tot Fees"):
        match = re.search(rf"\n{re.escape(name)}\s*\n\s*(-?\$?-?[\d,.]+)", section)
        assert match, f"{name} for {heading} not found:\n{section[:800]}"
        figures[name] = money(match.group(1))
    return figures


def calendar_figures(body: str) -> dict[int, tuple[int, float]]:
    """March 2025's cells that have trades: day of month -> (trades, P&L)."""
    march = body.split("March 2025", 2)[-1].split("January 2025")[0]
    cells = re.findall(r"\n(\d{1,2})\s*\n\s*(\d+) trades?\s*\n\s*(-?\$-?[\d,.]+)", march)
    return {int(d): (int(n), money(p)) for d, n, p in cells}


async def check_pages_match_analytics(
    browser: Browser, tradenote: TradeNoteServer, user: dict[str, Any], redis: Redis
) -> None:
    """Every figure TradeNote's pages show equals our analytics API's for those days."""
    total = (await analytics(redis, start=D1, end=D2))["total"]
    per_day = {d: (await analytics(redis, start=d, end=d))["total"] for d in (D1, D2)}
    page = await logged_in(browser, tradenote, user)
    try:
        # the dashboard shows whole dollars
        body = await show(page, tradenote.base_url, "dashboard", "gross", "Cumulated P&L")
        assert dashboard_cumulated(body) == pytest.approx(total["gross_pnl"], abs=0.5)
        body = await show(page, tradenote.base_url, "dashboard", "net", "Cumulated P&L")
        assert dashboard_cumulated(body) == pytest.approx(total["total_pnl"], abs=0.5)

        for mode, label, key in (("gross", "P&L(g)", "gross_pnl"), ("net", "P&L(n)", "total_pnl")):
            body = await show(page, tradenote.base_url, "daily", mode, label)
            for day, figures in per_day.items():
                shown = daily_figures(body, day, label)
                assert shown[label] == pytest.approx(figures[key], abs=0.01), (day, label)
                assert shown["Trades"] == figures["trades"], day
                assert (shown["Wins"], shown["Losses"]) == (figures["wins"], figures["losses"])
                assert shown["Tot Fees"] == pytest.approx(figures["commissions"], abs=0.01)

        body = await show(page, tradenote.base_url, "calendar", "net", re.compile(r"^\d+ trades?$"))
        cells = calendar_figures(body)  # whole dollars: parseInt, toward zero
        assert cells == {
            d.day: (per_day[d]["trades"], math.trunc(per_day[d]["total_pnl"])) for d in (D1, D2)
        }, cells
    finally:
        await page.close()


async def test_tradenote_pages_show_what_our_analytics_reports(
    browser: Browser, tradenote: TradeNoteServer, journal_user: JournalUser, redis: Redis
) -> None:
    user, worker = journal_user
    await journal_one_by_one(redis, worker, session_fills())
    await check_pages_match_analytics(browser, tradenote, user, redis)


async def test_a_day_document_with_a_wrong_td_fails_the_check(
    browser: Browser, tradenote: TradeNoteServer, journal_user: JournalUser, redis: Redis
) -> None:
    """Break one stored trade's ``td`` (as a buggy writer would): TradeNote's pages no
    longer show the figures, and the check above detects it."""
    user, worker = journal_user
    await journal_one_by_one(redis, worker, session_fills())
    doc = next(d for d in tradenote.day_documents(user) if d["dateUnix"] == day_unix(D2, NY))
    trades = orjson.loads(orjson.dumps(doc["trades"]))
    trades[0]["td"] = doc["dateUnix"] + 3600
    tradenote.parse("PUT", f"classes/trades/{doc['objectId']}", {"trades": trades}, master=True)
    with pytest.raises((AssertionError, PlaywrightTimeout)) as caught:
        await check_pages_match_analytics(browser, tradenote, user, redis)
    print(f"the check failed as it should: {str(caught.value)[:300]}")


async def test_an_account_added_after_login_shows_after_a_fresh_login(
    browser: Browser, tradenote: TradeNoteServer, journal_user: JournalUser, redis: Redis
) -> None:
    """What docs/JOURNAL.md tells the trader: TradeNote reads the user's accounts at login,
    so a trading account the journal adds later appears after logging out and in."""
    user, worker = journal_user
    day1 = [f for f in session_fills() if f.time < day_unix(D2, NY)]
    first = [f for f in day1 if f.account == "acct-a" and f.symbol != "MSFT"]
    later = [f for f in day1 if f.account == "acct-b"]
    await journal_one_by_one(redis, worker, first)
    page = await logged_in(browser, tradenote, user)
    try:
        body = await show(page, tradenote.base_url, "daily", "gross", "P&L(g)")
        before = daily_figures(body, D1, "P&L(g)")["P&L(g)"]
        await journal_one_by_one(redis, worker, later)  # adds acct-b to _User.accounts
        body = await show(page, tradenote.base_url, "daily", "gross", "P&L(g)")
        assert daily_figures(body, D1, "P&L(g)")["P&L(g)"] == pytest.approx(before)
    finally:
        await page.close()
    page = await logged_in(browser, tradenote, user)  # a fresh login
    try:
        body = await show(page, tradenote.base_url, "daily", "gross", "P&L(g)")
        expected = (await analytics(redis, start=D1, end=D1))["total"]["gross_pnl"]
        shown = daily_figures(body, D1, "P&L(g)")["P&L(g)"]
        assert shown == pytest.approx(expected, abs=0.01) and shown != pytest.approx(before)
    finally:
        await page.close()


async def test_option_trades_show_their_dollars_on_tradenotes_pages(
    browser: Browser, tradenote: TradeNoteServer, journal_user: JournalUser, redis: Redis
) -> None:
    """Calls and puts (x100 proceeds, a put closed at 0 when it expired worthless): the
    dashboard, daily page and calendar show what our analytics report."""
    user, worker = journal_user
    await journal_one_by_one(redis, worker, option_fills())
    await check_pages_match_analytics(browser, tradenote, user, redis)
    page = await logged_in(browser, tradenote, user)
    try:
        body = await show(page, tradenote.base_url, "daily", "gross", "P&L(g)")
        assert daily_figures(body, D1, "P&L(g)")["P&L(g)"] == pytest.approx(225.0)
        assert daily_figures(body, D2, "P&L(g)")["P&L(g)"] == pytest.approx(-360.0)
        # each day's Trades tab: symbol, volume (contracts), position, ..., P&L(n)
        rows = await page.eval_on_selector_all(
            "[id^=tradesNav-] tbody tr",
            "trs => trs.map(tr => [...tr.querySelectorAll('td')].map(td => td.textContent.trim()))",
        )
        by_symbol = {row[0]: row for row in rows}
        call, put = by_symbol[CALL], by_symbol[PUT]
        assert (call[1], call[2], money(call[5])) == ("4", "Long", 148.70), call
        assert (put[1], put[2], money(put[5])) == ("6", "Long", -361.95), put
    finally:
        await page.close()
