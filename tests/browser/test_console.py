"""The web console in headless Chromium against a real datahub and a real Redis.

Chromium is Debian's (``scripts/setup/60-web.sh``), driven by the Playwright library
(``executable_path``; Playwright's own browser download is never used). Under CI=true a
missing chromium or playwright fails; locally it skips.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from app.datahub.app import create_app
from tests.apps import serve, settings_for
from tests.fakes.backtest_runs import write_run
from tests.servers import IN_CI, RedisServer, require_binary

try:
    from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright
except ImportError:  # pragma: no cover - depends on the dev environment
    if IN_CI:
        raise
    pytest.skip(
        "playwright (Python) not installed: pip install playwright", allow_module_level=True
    )

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "test-output"
PASS = "browser-test-passphrase"
ADMIN = "browser-test-admin-key-7f3a"
SYMBOLS = ["AAPL", "MSFT", "SPY", "TSLA"]
RISK_YAML = """
rate_limit:
  global: {max_orders: 1000, window_seconds: 60}
  per_symbol: {max_orders: 1000, window_seconds: 60}
duplicate: null
price_collar: null
sizing:
  default: {mode: signal, quantity: 1}
"""
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
UP_RGB = (38, 166, 154)  # the chart's candle colours (web/src/chart.js)
DOWN_RGB = (239, 83, 80)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    chromium = require_binary("chromium")
    async with async_playwright() as pw:
        # launch() gives every run a fresh temporary --user-data-dir of its own
        b = await pw.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS, timeout=30_000
        )
        try:
            yield b
        finally:
            await b.close()


@dataclass
class Datahub:
    url: str
    http: httpx.AsyncClient

    async def webhook(self, **kw: Any) -> httpx.Response:
        body = {"passphrase": PASS, "ticker": "AAPL", "action": "buy", "quantity": 10, **kw}
        return await self.http.post("/webhook/tradingview", content=json.dumps(body))

    async def admin(self, path: str) -> Any:
        r = await self.http.get(path, headers={"X-API-Key": ADMIN})
        r.raise_for_status()
        return r.json()


@dataclass
class Console(Datahub):
    page: Page = field(default=None)  # type: ignore[assignment]
    errors: list[str] = field(default_factory=list)

    def assert_no_console_errors(self, allow: str | None = None) -> None:
        errors = [e for e in self.errors if not (allow and re.search(allow, e))]
        assert not errors, "console errors:\n" + "\n".join(errors)


@pytest.fixture
async def datahub(redis_srv: RedisServer, redis: Redis, tmp_path: Path) -> AsyncIterator[Datahub]:
    risk = tmp_path / "risk.yaml"
    risk.write_text(RISK_YAML)
    settings = settings_for(
        redis_srv.url,
        symbols=SYMBOLS,
        webhook_passphrase=PASS,
        admin_api_key=ADMIN,
        risk_config=risk,
        sim_quote_rate=10,
        backtest_dir=tmp_path / "backtests",
    )
    app = create_app(settings)
    if not any(getattr(r, "path", None) == "/" for r in app.routes):
        from app.datahub.routers import console as console_router

        app.include_router(console_router.router)  # until app.py includes it
    async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as http:
        yield Datahub(url, http)


@pytest.fixture
async def console(datahub: Datahub, browser: Browser) -> AsyncIterator[Console]:
    context = await browser.new_context(viewport={"width": 1600, "height": 1060})
    page = await context.new_page()
    page.set_default_timeout(10_000)
    c = Console(datahub.url, datahub.http, page)

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            c.errors.append(f"{msg.text} @ {msg.location.get('url', '')}")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: c.errors.append(f"page error: {exc}"))
    try:
        yield c
    finally:
        page.remove_listener("console", on_console)
        await context.close()


async def wait_js(page: Page, expression: str, timeout: float = 10.0) -> None:
    """Poll a JavaScript condition from the test (Runtime.evaluate): Playwright's own
    wait_for_function polls with eval() inside the page, which the console's CSP
    (script-src 'self', no unsafe-eval) rightly refuses."""
    deadline = time.monotonic() + timeout
    while not await page.evaluate(expression):
        assert time.monotonic() < deadline, f"not true within {timeout}s: {expression}"
        await asyncio.sleep(0.05)


async def open_unlocked(c: Console) -> Page:
    page = c.page
    await page.goto(c.url + "/")
    await page.locator("#login-key").fill(ADMIN)
    await page.locator("#login-ok").click()
    await page.wait_for_selector("#login", state="hidden")
    await page.wait_for_selector("#account dd")  # admin panels answered with the key
    return page


async def chart_bars(page: Page) -> int:
    return int(await page.locator("#chart").get_attribute("data-bars") or 0)


async def candle_pixels(page: Page) -> int:
    """Pixels in the chart's canvases painted in the candle colours."""
    return int(
        await page.evaluate(
            """([up, down]) => {
              let n = 0;
              for (const cv of document.querySelectorAll('#chart canvas')) {
                if (!cv.width || !cv.height) continue;
                const d = cv.getContext('2d').getImageData(0, 0, cv.width, cv.height).data;
                for (let i = 0; i < d.length; i += 4) {
                  for (const c of [up, down]) {
                    if (Math.abs(d[i] - c[0]) < 6 && Math.abs(d[i + 1] - c[1]) < 6
                        && Math.abs(d[i + 2] - c[2]) < 6 && d[i + 3] > 200) { n++; break; }
                  }
                }
              }
              return n;
            }""",
            [UP_RGB, DOWN_RGB],
        )
    )


async def test_page_loads_draws_bars_and_switches(console: Console) -> None:
    # nothing secret in the page source or the bundle
    html = (await console.http.get("/")).text
    assert ADMIN not in html and PASS not in html
    page = await open_unlocked(console)
    assert await page.evaluate("sessionStorage.getItem('traderops.apiKey')") == ADMIN
    assert await page.evaluate("localStorage.getItem('traderops.apiKey')") is None

    await wait_js(page, "Number(document.querySelector('#chart').dataset.bars) > 50")
    assert await page.locator("#chart-symbol").inner_text() == "AAPL"
    await page.wait_for_timeout(300)  # one animation frame or two for the canvas
    assert await candle_pixels(page) > 500, "no candles painted on the chart"

    # the watchlist fills in from the stream, and the stream shows live
    await wait_js(
        page,
        "[...document.querySelectorAll('#watchlist td.last')].every(td => td.textContent !== '—')",
    )
    assert await page.locator("#watchlist tr").count() == len(SYMBOLS)
    await page.wait_for_selector("#ws-status.live")

    # resolution switch: daily bars are a day apart
    async with page.expect_response(re.compile(r"/api/v1/history\?.*resolution=1D")) as resp:
        await page.locator('#resolutions button[data-res="1D"]').click()
    bars = (await (await resp.value).json())["bars"]
    assert bars and bars[-1]["time"] - bars[-2]["time"] >= 86_400
    await wait_js(page, f"document.querySelector('#chart').dataset.bars === '{len(bars)}'")

    # symbol search: type, pick from the list, the chart follows
    await page.locator("#symbol-input").fill("ms")
    await page.wait_for_selector('#symbol-results li[data-symbol="MSFT"]')
    await page.locator("#symbol-input").press("Enter")
    await wait_js(page, "document.querySelector('#chart-symbol').textContent === 'MSFT'")
    await wait_js(page, "Number(document.querySelector('#chart').dataset.bars) > 50")

    # journal: rendered when the analytics API answers, else said to be unavailable
    analytics = await console.http.get("/api/v1/analytics", headers={"X-API-Key": ADMIN})
    if analytics.status_code == 200:  # (the datahub serves it since the journal work landed)
        await page.wait_for_selector("#journal-headline")
        await page.wait_for_selector("#journal-calendar i[data-date]")
    else:
        await page.wait_for_selector("#journal-unavailable")

    # Lock forgets the key and clears what the admin API showed
    await page.locator("#logout").click()
    await page.wait_for_selector("#login", state="visible")
    assert await page.evaluate("sessionStorage.getItem('traderops.apiKey')") is None
    assert await page.locator("#account dd").count() == 0
    console.assert_no_console_errors()


async def test_webhook_shows_as_order_and_position_within_a_second(console: Console) -> None:
    page = await open_unlocked(console)
    await wait_js(page, "Number(document.querySelector('#chart').dataset.bars) > 50")
    await page.wait_for_selector("#ws-status.live")

    r = await console.webhook(quantity=7, alert_id="browser-1")
    assert r.status_code == 202, r.text
    order_id = r.json()["order_id"]
    # (pushed over the stream: no fixed latency asserted, a loaded box varies several-fold)
    await page.wait_for_selector(f'#orders tr[data-id="{order_id}"]')
    await page.wait_for_selector('#positions tr[data-symbol="AAPL"]')
    row = page.locator('#positions tr[data-symbol="AAPL"]')
    assert (await row.locator("td").nth(1).inner_text()) == "7"
    await page.wait_for_selector(f'#orders tr[data-id="{order_id}"][data-status="filled"]')
    # our fill is drawn on the chart, the alert listed as accepted
    await wait_js(page, "Number(document.querySelector('#chart').dataset.markers) >= 1")
    await page.wait_for_selector('#alerts tr[data-alert-id="browser-1"][data-status="accepted"]')

    # a resting limit order can be cancelled from the orders panel
    r = await console.webhook(order_type="limit", price=1.0, quantity=1, alert_id="browser-2")
    assert r.status_code == 202, r.text
    resting = r.json()["order_id"]
    await page.locator(f'#orders tr[data-id="{resting}"] button.cancel').click(timeout=2000)
    await page.wait_for_selector(f'#orders tr[data-id="{resting}"][data-status="canceled"]')

    OUTPUT.mkdir(exist_ok=True)
    await page.wait_for_timeout(400)
    await page.screenshot(path=str(OUTPUT / "console.png"), full_page=True)
    console.assert_no_console_errors()


async def test_positions_show_each_strategys_share(console: Console) -> None:
    page = await open_unlocked(console)
    for i, (strategy, qty) in enumerate([("momentum", 3), ("s1", 2)]):
        r = await console.webhook(quantity=qty, strategy=strategy, alert_id=f"share-{i}")
        assert r.status_code == 202, r.text
    shares = page.locator('#positions tr[data-symbol="AAPL"] .strategies')
    await shares.wait_for()
    for _ in range(50):
        if (await shares.inner_text()) == "momentum 3 · s1 2":
            break
        await page.wait_for_timeout(100)
    assert (await shares.inner_text()) == "momentum 3 · s1 2"
    console.assert_no_console_errors()


async def test_positions_and_account_show_the_same_unrealised_pnl(console: Console) -> None:
    """Both panels price the position from one source (the stream's quotes, as they
    arrive): the Account panel once showed the book's mark as of its last store (-$0.72)
    beside the Positions panel's live re-pricing (-$0.84)."""
    page = await open_unlocked(console)
    await page.wait_for_selector("#ws-status.live")
    r = await console.webhook(quantity=7, alert_id="pnl-1")
    assert r.status_code == 202, r.text
    await page.wait_for_selector('#positions tr[data-symbol="AAPL"]')
    shown = """() => {
      const dt = [...document.querySelectorAll('#account dt')].find(
        (e) => e.textContent === 'Unrealised');
      const cell = document.querySelector('#positions tr[data-symbol="AAPL"] .upnl');
      return [cell ? cell.textContent : null, dt ? dt.nextElementSibling.textContent : null];
    }"""
    samples = []
    # across several quotes (10/s) and panel refreshes (every 2 s): at least 40 samples, and
    # on a loaded box as long as it takes the quote to move (30 s at most)
    for _ in range(300):
        await page.wait_for_timeout(100)
        samples.append(tuple(await page.evaluate(shown)))
        if len(samples) >= 40 and len({s[0] for s in samples}) > 1:
            break
    OUTPUT.mkdir(exist_ok=True)
    await page.screenshot(path=str(OUTPUT / "console-pnl.png"), full_page=True)
    differ = [s for s in samples if s[0] != s[1]]
    assert not differ, f"positions vs account unrealised: {differ[:5]} ({len(differ)} of 40)"
    assert len({s[0] for s in samples}) > 1, "the quotes never moved: nothing was compared"
    console.assert_no_console_errors()


async def test_kill_switch_blocks_the_next_alert(console: Console) -> None:
    page = await open_unlocked(console)
    await page.wait_for_selector("#ks-badge.ACTIVE")

    await page.locator('#ks-buttons button[data-state="HALTED"]').click()
    dialog = page.locator("#confirm")
    await dialog.wait_for(state="visible")
    await page.locator("#confirm-reason").fill("browser test")
    await page.locator("#confirm-ok").click()
    await page.wait_for_selector("#ks-badge.HALTED")
    risk = await console.admin("/api/v1/risk")
    assert risk["kill_switch"]["state"] == "HALTED"
    assert risk["kill_switch"]["reason"] == "browser test"

    r = await console.webhook(alert_id="after-halt")
    assert r.status_code == 200 and r.json()["status"] == "denied", r.text
    assert r.json()["check"] == "kill_switch"
    row = page.locator('#alerts tr[data-alert-id="after-halt"][data-status="denied"]')
    await row.wait_for(timeout=5000)
    assert await row.locator("td.check").inner_text() == "kill_switch"
    orders = await console.admin("/api/v1/orders")
    assert orders["orders"] == []

    # cancelling the confirmation changes nothing; confirming ACTIVE resumes
    await page.locator('#ks-buttons button[data-state="ACTIVE"]').click()
    await page.locator("#confirm button[value=cancel]").click()
    await page.wait_for_timeout(300)
    assert await page.locator("#ks-badge").inner_text() == "HALTED"
    await page.locator('#ks-buttons button[data-state="ACTIVE"]').click()
    await page.locator("#confirm-ok").click()
    await page.wait_for_selector("#ks-badge.ACTIVE")
    r = await console.webhook(alert_id="after-resume")
    assert r.status_code == 202, r.text
    console.assert_no_console_errors()


async def test_journal_unavailable_is_said_so(console: Console) -> None:
    """An analytics API that fails: the panel says so and everything else works."""
    page = console.page

    async def fail(route: Any) -> None:
        await route.fulfill(status=503, content_type="application/json", body='{"detail":"down"}')

    await page.route(re.compile(r"/api/v1/analytics"), fail)
    await open_unlocked(console)
    await page.wait_for_selector("#journal-unavailable")
    assert "journal analytics unavailable" in await page.locator("#journal").inner_text()
    await wait_js(page, "Number(document.querySelector('#chart').dataset.bars) > 50")
    console.assert_no_console_errors(allow=r"status of 503 .*/api/v1/analytics")


async def test_backtests_are_listed_and_open_their_report(console: Console, tmp_path: Path) -> None:
    """Runs written by the backtest's writer into TRADEROPS_BACKTEST_DIR: listed newest
    first with their figures; the report opens in a frame where its CSS applies and nothing
    runs; a CSV downloads (fetched with the key)."""
    root = tmp_path / "backtests"  # (the datahub fixture's TRADEROPS_BACKTEST_DIR)
    now = time.time()
    older = write_run(root, "momentum", date(2026, 11, 2), date(2026, 11, 6), 120.0, now - 3600)
    newer = write_run(root, "momentum+meanrev", date(2026, 12, 1), date(2026, 12, 4), -80.0, now)
    page = await open_unlocked(console)
    await page.locator("#backtests-panel").scroll_into_view_if_needed()
    row = page.locator(f'#backtests tr[data-name="{older.name}"]')
    await row.wait_for()
    names = await page.locator("#backtests tr").evaluate_all(
        "rows => rows.map(r => r.dataset.name)"
    )
    assert names == [newer.name, older.name]
    cells = await row.locator("td").all_inner_texts()
    assert cells[:7] == [older.name, "2026-11-02", "2026-11-06", "$120.00", "+0.12%", "1", "$50.00"]
    assert "down" in (
        await page.locator(f'#backtests tr[data-name="{newer.name}"] td.pnl').get_attribute("class")
        or ""
    )

    await row.locator("button.report").click()
    await page.wait_for_selector("#report-dialog[open]")
    frame = "document.querySelector('#report-frame')"
    await wait_js(page, f"{frame} && {frame}.dataset.name === '{older.name}'")
    assert await page.locator("#report-frame").get_attribute("sandbox") == "allow-same-origin"
    shown = await page.evaluate(
        f"""() => {{
          const doc = {frame}.contentDocument;
          const card = doc.querySelector('.card');
          const heat = [...doc.querySelectorAll('.heat td')].find((td) => td.textContent === '+0.12%');
          return {{
            title: doc.title,
            h1: doc.querySelector('h1').textContent,
            cards: [...doc.querySelectorAll('.card')].map((c) => c.textContent),
            charts: doc.querySelectorAll('svg polyline, svg path').length,
            cardBorder: getComputedStyle(card).borderTopStyle,
            heat: heat ? getComputedStyle(heat).backgroundColor : null,
            scripts: doc.querySelectorAll('script').length,
          }};
        }}"""
    )
    assert shown["title"] == "Backtest momentum" and shown["h1"] == "Backtest: momentum"
    assert "Net P&L$120.00" in shown["cards"] and "Trades1" in shown["cards"]
    assert shown["charts"] >= 2
    # the report's own CSS applies (its <style> and the heat map's style attributes)
    assert shown["cardBorder"] == "solid"
    assert shown["heat"] == "rgb(66, 143, 92)"
    assert shown["scripts"] == 0
    OUTPUT.mkdir(exist_ok=True)
    await page.locator("#report-dialog").screenshot(path=str(OUTPUT / "console-backtest.png"))

    # a CSV from the report's header: fetched with the key, offered as a download
    async with page.expect_download() as info:
        await (
            page.locator("#report-downloads")
            .get_by_role("button", name="fills", exact=True)
            .click()
        )
    download = await info.value
    assert download.suggested_filename == f"{older.name}-fills.csv"
    assert Path(await download.path()).read_bytes() == (older / "fills.csv").read_bytes()

    await page.locator("#report-close").click()
    await page.wait_for_selector("#report-dialog", state="hidden")
    assert await page.locator("#report-frame").count() == 0
    await page.locator("#logout").click()
    await page.wait_for_selector("#login", state="visible")
    assert await page.locator("#backtests tr").count() == 0
    console.assert_no_console_errors()


async def test_static_files_and_headers(datahub: Datahub) -> None:
    r = await datahub.http.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["cache-control"] == "no-cache"
    assert "default-src 'self'" in r.headers["content-security-policy"]
    r2 = await datahub.http.get("/", headers={"If-None-Match": r.headers["etag"]})
    assert r2.status_code == 304
    assets = re.findall(r'/static/(console-[A-Z0-9]+\.(?:js|css))"', r.text)
    assert len(assets) == 2, r.text
    for name in assets:
        a = await datahub.http.get(f"/static/{name}")
        assert a.status_code == 200
        assert a.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert a.headers["x-content-type-options"] == "nosniff"
        kind = "text/javascript" if name.endswith(".js") else "text/css"
        assert a.headers["content-type"].startswith(kind)
        assert ADMIN not in a.text and PASS not in a.text
        # served from the datahub itself: nothing fetched from a CDN at run time
        assert not re.search(r"""(src|href)\s*=\s*["']https?:|import\s*\(?\s*["']https?:""", a.text)
    for bad in (
        "/static/../routers/console.py",
        "/static/%2e%2e/app.py",
        "/static/nope.js",
        "/static/",
    ):
        assert (await datahub.http.get(bad)).status_code == 404, bad


def test_committed_bundle_matches_the_sources(tmp_path: Path) -> None:
    """app/datahub/static is what `npm run build` makes of web/ (rebuild with `make web`)."""
    node = require_binary("node")
    if not (ROOT / "web" / "node_modules" / "esbuild").is_dir():
        message = "web/node_modules missing (run `make setup` or `cd web && npm ci`)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    subprocess.run(
        [node, "build.mjs", "--outdir", str(tmp_path)],
        cwd=ROOT / "web",
        check=True,
        capture_output=True,
        timeout=60,
    )
    static = ROOT / "app" / "datahub" / "static"
    built = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    committed = {p.name: p.read_bytes() for p in static.iterdir() if p.is_file()}
    assert sorted(built) == sorted(committed), "stale bundle: run `make web` and commit it"
    assert built == committed, "stale bundle: run `make web` and commit it"


@pytest.fixture
async def two_accounts(
    redis_srv: RedisServer, redis: Redis, tmp_path: Path, browser: Browser
) -> AsyncIterator[Console]:
    risk = tmp_path / "risk.yaml"
    risk.write_text(RISK_YAML)
    accounts = tmp_path / "accounts.yaml"
    accounts.write_text(
        "accounts: [{id: swing, broker: paper}, {id: mirror, broker: paper}]\n"
        "routes: [{strategy: '*', accounts: [{account: swing}, {account: mirror, multiplier: 2}]}]\n"
    )
    settings = settings_for(
        redis_srv.url,
        symbols=SYMBOLS,
        webhook_passphrase=PASS,
        admin_api_key=ADMIN,
        risk_config=risk,
        accounts=accounts,
        sim_quote_rate=10,
    )
    async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as http:
        context = await browser.new_context(viewport={"width": 1600, "height": 1060})
        c = Console(url, http, await context.new_page())
        c.page.on("pageerror", lambda exc: c.errors.append(f"page error: {exc}"))
        try:
            yield c
        finally:
            await context.close()


async def test_the_account_selector_switches_every_admin_panel(two_accounts: Console) -> None:
    c = two_accounts
    for _ in range(100):  # both accounts held by their engines
        accounts = (await c.admin("/api/v1/accounts"))["accounts"]
        if all(a["held_by"] for a in accounts):
            break
        await asyncio.sleep(0.05)
    r = await c.webhook(quantity=3, alert_id="sel-1")
    assert [d["status"] for d in r.json()["decisions"]] == ["accepted", "accepted"], r.text
    page = await open_unlocked(c)
    select = page.locator("#account-select")
    assert await select.is_visible()
    assert await select.locator("option").all_inner_texts() == [
        "swing (paper)",
        "mirror (paper)",
    ]
    row = page.locator('#positions tr[data-symbol="AAPL"]')

    async def shown_quantity(want: str) -> None:
        for _ in range(100):
            if await row.count() and await row.locator("td").nth(1).inner_text() == want:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"positions panel never showed {want} AAPL")

    await shown_quantity("3")  # the default (first) account
    # styled like the other controls of the dark top bar, not the browser's white box
    looks = """(sel) => {
      const css = (e) => { const c = getComputedStyle(e);
        return [c.backgroundColor, c.color, c.borderTopColor, c.fontFamily, c.fontSize]; };
      const button = document.querySelector('#resolutions button:not(.on)');
      return [css(document.querySelector(sel)), css(button)];
    }"""
    OUTPUT.mkdir(exist_ok=True)
    await page.locator(".topbar").screenshot(path=str(OUTPUT / "console-account-select.png"))
    select_css, button_css = await page.evaluate(looks, "#account-select")
    assert select_css == button_css, (select_css, button_css)
    await select.select_option("mirror")
    await shown_quantity("6")  # the other account's book: twice the quantity
    await page.wait_for_selector('#alerts tr[data-alert-id="sel-1"][data-status="accepted"]')
    c.assert_no_console_errors()


@pytest.fixture
async def options_hub(
    redis_srv: RedisServer, redis: Redis, tmp_path: Path, browser: Browser
) -> AsyncIterator[Console]:
    """A datahub whose feed lists SPY options (tests/fakes/option_chains.py) and whose
    account's book holds a call vertical and a put, stored as an engine stores them (no
    engine runs here, so nothing overwrites it)."""
    from tests.fakes.option_chains import ChainFeed, seed_options_book

    await seed_options_book(redis)
    settings = settings_for(
        redis_srv.url,
        symbols=SYMBOLS,
        webhook_passphrase=PASS,
        admin_api_key=ADMIN,
        execution_in_datahub=False,
        sim_quote_rate=10,
    )
    app = create_app(settings, feed=ChainFeed(SYMBOLS, quote_rate=10))
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as http:
        context = await browser.new_context(viewport={"width": 1600, "height": 1060})
        c = Console(url, http, await context.new_page())
        c.page.set_default_timeout(10_000)
        c.page.on("pageerror", lambda exc: c.errors.append(f"page error: {exc}"))
        c.page.on(
            "console",
            lambda msg: (
                msg.type == "error"
                and c.errors.append(f"{msg.text} @ {msg.location.get('url', '')}")
            ),
        )
        try:
            yield c
        finally:
            await context.close()


async def test_options_panel_shows_the_chain_and_spreads(options_hub: Console) -> None:
    from tests.fakes.option_chains import CALL_500, CALL_505, PUT_495, listed

    c = options_hub
    page = await open_unlocked(c)
    # the spread order lists its legs in the orders panel
    order = page.locator('#orders tr[data-id="seed-vertical"]')
    await order.locator(f'.leg[data-symbol="{CALL_505}"]').wait_for()
    assert await order.locator(".leg").all_inner_texts() == [
        f"buy to open 1\u00d7 {CALL_500}",
        f"sell to open 1\u00d7 {CALL_505}",
    ]
    # the option positions as spreads: a group per (strategy, underlying), its legs below
    groups = page.locator("#option-groups tr.group")
    await page.wait_for_selector('#option-groups tr.group[data-group="vertical|SPY"]')
    assert await groups.evaluate_all("rows => rows.map(r => r.dataset.kind)") == [
        "long put",
        "call vertical",
    ]
    vertical = page.locator('#option-groups tr.group[data-group="vertical|SPY"]')
    assert await vertical.locator("td.cost").inner_text() == "$80.00"
    legs = page.locator('#option-groups tr.leg[data-group="vertical|SPY"]')
    assert await legs.evaluate_all("rows => rows.map(r => r.dataset.symbol)") == [
        CALL_500,
        CALL_505,
    ]
    assert await page.locator(f'#option-groups tr.leg[data-symbol="{PUT_495}"]').count() == 1
    assert await vertical.locator("td.delta").inner_text() == "—"  # no chain seen yet

    # the panel follows the chart's symbol; AAPL lists no options, and says so
    panel = page.locator("#options-panel")
    await panel.scroll_into_view_if_needed()
    assert await page.locator("#chart-symbol").inner_text() == "AAPL"
    await page.wait_for_selector("#options-message")
    assert await page.locator("#options-message").inner_text() == "no options listed for AAPL"

    # SPY on the chart: its soonest expiration's chain, strikes by row, ATM highlighted
    await page.locator('#watchlist tr[data-symbol="SPY"]').click()
    await panel.scroll_into_view_if_needed()  # (loaded while on screen: the click scrolled up)
    await page.wait_for_selector("#options-chain tr[data-strike]")
    strikes = await page.locator("#options-chain tr[data-strike]").evaluate_all(
        "rows => rows.map(r => Number(r.dataset.strike))"
    )
    assert strikes == [490, 495, 500, 505, 510]
    assert await page.locator("#options-chain tr.atm").get_attribute("data-strike") == "500"
    expirations = [d.isoformat() for d in listed()]
    select = page.locator("#options-expiration")
    assert await select.locator("option").all_inner_texts() == expirations
    assert await select.input_value() == expirations[0]
    assert await page.locator("#options-age").inner_text() == "greeks 2 min old"
    atm = page.locator("#options-chain tr.atm td")
    # calls: OI, Vol, IV, delta, bid, ask | strike | puts: bid, ask, delta, IV, Vol, OI
    texts = await atm.all_inner_texts()
    assert texts[:6] == ["5,000", "1,000", "20.0%", "0.500", "3.05", "3.15"]
    assert texts[6] == "500.00"
    assert texts[7:] == ["3.05", "3.15", "-0.500", "20.0%", "1,000", "5,000"]

    # the positions' expiration: its chain gives the spreads their marks and greeks
    async with page.expect_response(re.compile(r"/api/v1/options/chain\?.*expiration=")):
        await select.select_option(expirations[1])
    await wait_js(
        page,
        """document.querySelector('#option-groups tr.group[data-group="vertical|SPY"] td.delta')
           .textContent === '50.0'""",
    )
    assert await vertical.locator("td.upnl").inner_text() == "$20.00"
    OUTPUT.mkdir(exist_ok=True)
    await page.wait_for_timeout(200)
    await panel.screenshot(path=str(OUTPUT / "console-options.png"))
    # (no engine runs: /risk answers 503; AAPL's expirations 404)
    c.assert_no_console_errors(allow=r"status of (503|404)")


async def test_options_panel_on_the_simulated_chains(console: Console) -> None:
    """The real thing: the simulated feed's chains, an iron condor alert through the engine
    and the paper broker, the panel showing SPY's chain and the condor as one spread."""
    c = console
    for _ in range(100):  # the account's engine holds it
        if (await c.admin("/api/v1/accounts"))["accounts"][0]["held_by"]:
            break
        await asyncio.sleep(0.05)
    option = {"shape": "iron_condor", "dte": 30, "delta": 0.16, "width": 5}
    r = await c.webhook(
        ticker="SPY", action="sell", quantity=1, strategy="condor", option=option, alert_id="ic-1"
    )
    assert r.status_code == 202, r.text
    legs = [leg["symbol"] for leg in r.json()["option"]["legs"]]
    page = await open_unlocked(c)
    group = page.locator('#option-groups tr.group[data-group="condor|SPY"]')
    await group.wait_for()
    assert await group.get_attribute("data-kind") == "iron condor"
    shown = await page.locator('#option-groups tr.leg[data-group="condor|SPY"]').evaluate_all(
        "rows => rows.map(r => r.dataset.symbol)"
    )
    assert sorted(shown) == sorted(legs)
    order = page.locator(f'#orders tr[data-id="{r.json()["order_id"]}"] .leg')
    assert sorted(await order.evaluate_all("els => els.map(e => e.dataset.symbol)")) == sorted(legs)

    await page.locator('#watchlist tr[data-symbol="SPY"]').click()
    await page.locator("#options-panel").scroll_into_view_if_needed()
    await wait_js(page, "document.querySelectorAll('#options-chain tr[data-strike]').length > 10")
    atm = float(await page.locator("#options-chain tr.atm").get_attribute("data-strike") or 0)
    spot = (await c.http.get("/api/v1/quotes", params={"symbols": "SPY"})).json()
    assert abs(atm - spot["quotes"]["SPY"]["last"]) < 10
    assert (await page.locator("#options-age").inner_text()).startswith("greeks ")
    assert await page.locator("#options-expiration option").count() > 3
    # the spread's greeks come from the chain the engine fetched (one cache per process)
    assert await group.locator("td.delta").inner_text() != "—"
    c.assert_no_console_errors()
