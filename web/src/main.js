// trader-ops console: wiring of chart, stream, panels and the admin API.
import "./style.css";
import { account, api, auth, tryApi } from "./api.js";
import { PriceChart } from "./chart.js";
import { $, h, num, pct, sign, toast } from "./dom.js";
import {
  renderAccount,
  renderAlerts,
  renderJournal,
  renderJournalUnavailable,
  renderOrders,
  renderPositions,
  renderRisk,
  tickPositions,
} from "./panels.js";
import { BacktestsPanel } from "./backtests.js";
import { OptionsPanel, isOcc, renderSpreads } from "./options.js";
import { Stream } from "./stream.js";

const PREFS = "traderops.console"; // non-secret view preferences (localStorage)
const RESOLUTIONS = ["1", "5", "15", "30", "60", "240", "1D", "1W", "1M"];
const LABELS = { 1: "1m", 5: "5m", 15: "15m", 30: "30m", 60: "1h", 240: "4h", "1D": "D", "1W": "W", "1M": "M" };
const POLL_MS = 2000;
const JOURNAL_MS = 30_000;

const state = {
  symbol: null,
  resolution: "5",
  watchlist: [],
  descriptions: new Map(),
  quotes: new Map(),
  orders: new Map(), // id -> Order (recent)
  openOrders: null, // Order[] when "open only" is on
  positions: [],
  account: null, // /api/v1/account as last fetched (re-priced with the quotes on screen)
  liveFills: new Map(), // order id -> Fill[] seen on the stream
  unlocked: false,
};

function loadPrefs() {
  try {
    return JSON.parse(localStorage.getItem(PREFS) || "{}");
  } catch {
    return {};
  }
}

function savePrefs() {
  localStorage.setItem(
    PREFS,
    JSON.stringify({ symbol: state.symbol, resolution: state.resolution, watchlist: state.watchlist }),
  );
}

// -- chart -----------------------------------------------------------------------------
const chart = new PriceChart($("#chart"), {
  onError: (msg) => toast(msg, true),
  onOhlc: (b) => {
    $("#chart-ohlc").textContent = b
      ? `O ${num(b.open)}  H ${num(b.high)}  L ${num(b.low)}  C ${num(b.close)}`
      : "";
  },
});

// -- options: the chart's symbol's chain, the account's spreads ---------------------------
const options = new OptionsPanel({ symbol: () => state.symbol });

// -- backtests: the runs in TRADEROPS_BACKTEST_DIR, their reports and files ----------------
const backtests = new BacktestsPanel();

function selectSymbol(symbol) {
  symbol = symbol.trim().toUpperCase();
  if (!symbol) return;
  state.symbol = symbol;
  $("#chart-symbol").textContent = symbol;
  $("#chart-desc").textContent = state.descriptions.get(symbol) || "";
  for (const row of document.querySelectorAll("#watchlist tr")) row.classList.toggle("sel", row.dataset.symbol === symbol);
  chart.load(symbol, state.resolution);
  options.follow();
  updateChartQuote();
  resubscribe();
  savePrefs();
}

function selectResolution(res) {
  state.resolution = res;
  for (const b of document.querySelectorAll("#resolutions button")) b.classList.toggle("on", b.dataset.res === res);
  if (state.symbol) chart.load(state.symbol, res);
  savePrefs();
}

function updateChartQuote() {
  const q = state.quotes.get(state.symbol);
  $("#chart-last").textContent = q ? num(q.last) : "";
  const ch = $("#chart-change");
  ch.textContent = q ? `${q.change >= 0 ? "+" : ""}${num(q.change)} (${pct(q.change_pct)})` : "";
  ch.className = `num ${q ? sign(q.change) : ""}`;
}

function fillsForChart() {
  const out = [];
  const seen = new Set();
  for (const [orderId, fills] of state.liveFills) {
    seen.add(orderId);
    for (const f of fills) {
      const buy = f.intent === "buy" || f.intent === "buy_to_cover";
      out.push({ id: f.id, symbol: f.symbol, side: buy ? "buy" : "sell", quantity: f.quantity, price: f.price, time: f.time });
    }
  }
  for (const o of state.orders.values()) {
    // (a spread's net price is no price of its underlying: its legs' fills come above)
    if (seen.has(o.id) || !o.filled_quantity || !o.avg_fill_price || o.request.legs?.length) continue;
    const r = o.request;
    const buy = r.intent === "buy" || r.intent === "buy_to_cover";
    out.push({ id: o.id, symbol: r.symbol, side: buy ? "buy" : "sell", quantity: o.filled_quantity, price: o.avg_fill_price, time: o.updated_at });
  }
  return out;
}

// -- watchlist ---------------------------------------------------------------------------
function renderWatchlist() {
  const rows = state.watchlist.map((s) =>
    h(
      "tr",
      { class: `click${s === state.symbol ? " sel" : ""}`, dataset: { symbol: s }, onclick: () => selectSymbol(s) },
      h("td", { title: state.descriptions.get(s) || "" }, h("b", {}, s)),
      h("td", { class: "r num last" }, "—"),
      h("td", { class: "r num chg" }, "—"),
      h("td", { class: "r num bid" }, "—"),
      h("td", { class: "r num ask" }, "—"),
      h(
        "td",
        { class: "r" },
        h("button", {
          type: "button",
          class: "x",
          title: `Remove ${s}`,
          onclick: (ev) => {
            ev.stopPropagation();
            state.watchlist = state.watchlist.filter((x) => x !== s);
            renderWatchlist();
            resubscribe();
            savePrefs();
          },
        }, "×"),
      ),
    ),
  );
  const tbody = $("#watchlist");
  tbody.replaceChildren(...rows);
  for (const s of state.watchlist) paintQuote(s, false);
}

function addToWatchlist(symbol) {
  if (state.watchlist.includes(symbol)) return;
  state.watchlist.push(symbol);
  renderWatchlist();
  resubscribe();
  savePrefs();
}

function paintQuote(symbol, flash = true) {
  const q = state.quotes.get(symbol);
  const row = document.querySelector(`#watchlist tr[data-symbol="${CSS.escape(symbol)}"]`);
  if (!q || !row) return;
  const last = row.querySelector(".last");
  const prev = Number(last.dataset.v);
  last.textContent = num(q.last);
  last.dataset.v = q.last;
  if (flash && prev && prev !== q.last) {
    last.classList.remove("flash-up", "flash-down");
    void last.offsetWidth; // restart the animation
    last.classList.add(q.last > prev ? "flash-up" : "flash-down");
  }
  const chg = row.querySelector(".chg");
  chg.textContent = pct(q.change_pct);
  chg.className = `r num chg ${sign(q.change_pct)}`;
  row.querySelector(".bid").textContent = num(q.bid);
  row.querySelector(".ask").textContent = num(q.ask);
}

// -- stream ------------------------------------------------------------------------------
let dirty = new Set();
let frame = 0;
function onQuotes(quotes) {
  for (const q of quotes) {
    state.quotes.set(q.symbol, q);
    dirty.add(q.symbol);
    chart.onQuote(q);
  }
  if (!frame) {
    frame = requestAnimationFrame(() => {
      frame = 0;
      for (const s of dirty) paintQuote(s);
      if (dirty.has(state.symbol)) updateChartQuote();
      tickPositions(state.positions, state.quotes);
      if (state.account && state.positions.length) drawAccount();
      dirty = new Set();
    });
  }
}

const stream = new Stream({
  key: () => auth.key,
  onQuotes,
  onOrder: (order) => {
    if (!state.unlocked || !order?.id) return;
    state.orders.set(order.id, order);
    drawOrders();
    chart.setFills(fillsForChart());
    soon();
  },
  onFill: (f) => {
    if (!state.unlocked || !f?.order_id) return;
    const list = state.liveFills.get(f.order_id) || [];
    if (!list.some((x) => x.id === f.id)) list.push(f);
    state.liveFills.set(f.order_id, list);
    chart.setFills(fillsForChart());
    soon();
    journalSoon();
  },
  onStatus: (up) => {
    const el = $("#ws-status");
    el.classList.toggle("live", up);
    el.textContent = up ? "live" : "offline";
  },
});

function resubscribe() {
  const symbols = new Set(state.watchlist);
  if (state.symbol) symbols.add(state.symbol);
  // (option contracts have no quotes on the stream: their marks are the chain's)
  for (const p of state.positions) if (p.quantity && !isOcc(p.symbol)) symbols.add(p.symbol);
  stream.setSymbols([...symbols]);
}

// -- admin panels ------------------------------------------------------------------------
function drawOrders() {
  const list = $("#orders-open-only").checked && state.openOrders
    ? state.openOrders
    : [...state.orders.values()].sort((a, b) => b.created_at - a.created_at).slice(0, 100);
  renderOrders(list, { onCancel: cancelOrder });
}

async function cancelOrder(order) {
  try {
    await api(`/api/v1/orders/${encodeURIComponent(order.id)}`, { method: "DELETE", admin: true });
    toast(`cancel sent for ${order.request.symbol} ${order.request.intent} ${order.request.quantity}`);
  } catch (err) {
    toast(`cancel failed: ${err.message}`, true);
  }
  refresh();
}

let refreshing = null;
let again = false;
async function refresh() {
  if (!state.unlocked) return;
  if (refreshing) {
    again = true;
    return refreshing;
  }
  refreshing = (async () => {
    const openOnly = $("#orders-open-only").checked;
    const [orders, open, positions, account, risk, alerts, spreads] = await Promise.all([
      tryApi("/api/v1/orders?limit=500", { admin: true }),
      openOnly ? tryApi("/api/v1/orders?status=open&limit=1000", { admin: true }) : null,
      tryApi("/api/v1/positions", { admin: true }),
      tryApi("/api/v1/account", { admin: true }),
      tryApi("/api/v1/risk", { admin: true }),
      tryApi("/api/v1/alerts?limit=100", { admin: true }),
      tryApi("/api/v1/options/positions", { admin: true }),
    ]);
    if (!state.unlocked) return;
    if (orders.ok) {
      state.orders = new Map(orders.data.orders.map((o) => [o.id, o]));
      state.openOrders = open?.ok ? open.data.orders : null;
      drawOrders();
      chart.setFills(fillsForChart());
    }
    if (positions.ok) {
      const before = state.positions.map((p) => p.symbol).join();
      state.positions = positions.data.positions.filter((p) => p.quantity !== 0);
      renderPositions(state.positions, state.quotes, { onSelect: selectSymbol });
      if (state.positions.map((p) => p.symbol).join() !== before) resubscribe();
    }
    if (account.ok) {
      state.account = account.data;
      drawAccount();
    }
    if (risk.ok) renderRisk(risk.data);
    if (alerts.ok) renderAlerts(alerts.data.alerts);
    if (spreads.ok) renderSpreads(spreads.data.groups);
    const failed = [orders, positions, account, risk, alerts].find((r) => !r.ok && r.status !== 401);
    $("#ws-status").title = failed ? `API: ${failed.error.message}` : "Stream";
  })();
  try {
    await refreshing;
  } finally {
    refreshing = null;
    if (again) {
      again = false;
      refresh();
    }
  }
}

function drawAccount() {
  renderAccount(state.account, state.positions, state.quotes);
}

let soonTimer = 0;
function soon() {
  clearTimeout(soonTimer);
  soonTimer = setTimeout(refresh, 60);
}

// Whether the datahub has the journal analytics API: asked of its OpenAPI document once,
// so a datahub without it costs no failing requests (and no red lines in the console).
let hasAnalytics = null;
async function analyticsAvailable() {
  if (hasAnalytics === null) {
    const r = await tryApi("/openapi.json");
    hasAnalytics = r.ok && r.data?.paths ? Boolean(r.data.paths["/api/v1/analytics"]) : true;
  }
  return hasAnalytics;
}

async function refreshJournal() {
  if (!state.unlocked) return;
  if (!(await analyticsAvailable())) {
    renderJournalUnavailable("this datahub has no /api/v1/analytics");
    return;
  }
  const [a, c] = await Promise.all([
    tryApi("/api/v1/analytics", { admin: true }),
    tryApi("/api/v1/analytics/calendar?months=6", { admin: true }),
  ]);
  if (a.ok && c.ok && a.data && c.data) {
    try {
      renderJournal(a.data, c.data);
      return;
    } catch (err) {
      console.warn("journal analytics: unexpected shape", err);
    }
  }
  const bad = !a.ok ? a : c;
  renderJournalUnavailable(bad.ok ? "" : `${bad.status || ""} ${bad.error?.message || ""}`.trim());
}

let journalTimer = 0;
function journalSoon() {
  clearTimeout(journalTimer);
  journalTimer = setTimeout(refreshJournal, 1500);
}

// -- confirmations -------------------------------------------------------------------------
function confirmAction({ title, text, ok = "Confirm", reason = false, flatten = false }) {
  const dlg = $("#confirm");
  $("#confirm-title").textContent = title;
  $("#confirm-text").textContent = text;
  $("#confirm-ok").textContent = ok;
  $("#confirm-reason-row").hidden = !reason;
  $("#confirm-flatten-row").hidden = !flatten;
  $("#confirm-reason").value = "";
  $("#confirm-flatten").checked = false;
  dlg.returnValue = "";
  dlg.showModal();
  return new Promise((resolve) => {
    dlg.addEventListener(
      "close",
      () =>
        resolve(
          dlg.returnValue === "ok"
            ? { reason: $("#confirm-reason").value.trim() || null, flatten: $("#confirm-flatten").checked }
            : null,
        ),
      { once: true },
    );
  });
}

const KS_TEXT = {
  ACTIVE: "Resume normal trading: every order is risk-checked as usual.",
  REDUCING: "Only orders that reduce exposure will be accepted; new risk is denied.",
  HALTED: "Deny every order, exits included, until the switch is set back.",
};

async function setKillSwitch(target) {
  const answer = await confirmAction({
    title: `Kill switch → ${target}`,
    text: KS_TEXT[target],
    ok: `Set ${target}`,
    reason: true,
    flatten: target !== "ACTIVE",
  });
  if (!answer) return;
  try {
    const r = await api("/api/v1/risk/kill-switch", {
      method: "POST",
      admin: true,
      body: { state: target, flatten: answer.flatten, reason: answer.reason || "console" },
    });
    toast(`kill switch ${r.state}${r.flatten?.length ? `, ${r.flatten.length} flatten order(s)` : ""}`);
  } catch (err) {
    toast(`kill switch: ${err.message}`, true);
  }
  refresh();
}

async function flattenAll() {
  const answer = await confirmAction({
    title: "Flatten all positions",
    text: "Send market orders closing every open position.",
    ok: "Flatten all",
  });
  if (!answer) return;
  try {
    const r = await api("/api/v1/flatten", { method: "POST", admin: true, body: {} });
    const denied = (r.orders || []).filter((d) => d.status !== "accepted");
    toast(`flatten: ${r.orders?.length || 0} order(s)${denied.length ? `, ${denied.length} denied` : ""}`, denied.length > 0);
  } catch (err) {
    toast(`flatten: ${err.message}`, true);
  }
  refresh();
}

// -- symbol search ---------------------------------------------------------------------------
function setupSearch() {
  const input = $("#symbol-input");
  const list = $("#symbol-results");
  let hits = [];
  let sel = 0;
  let timer = 0;
  let seq = 0;

  const close = () => {
    list.hidden = true;
    hits = [];
  };
  const paint = () => {
    list.replaceChildren(
      ...hits.map((hit, i) =>
        h(
          "li",
          {
            role: "option",
            class: i === sel ? "sel" : "",
            dataset: { symbol: hit.symbol },
            onmousedown: (ev) => {
              ev.preventDefault();
              choose(hit.symbol);
            },
          },
          h("b", {}, hit.symbol),
          h("span", { class: "muted" }, `${hit.description} · ${hit.exchange}`),
          h("button", {
            type: "button",
            title: "Add to watchlist",
            onmousedown: (ev) => {
              ev.preventDefault();
              ev.stopPropagation();
              addToWatchlist(hit.symbol);
            },
          }, "+"),
        ),
      ),
    );
    list.hidden = hits.length === 0;
  };
  const choose = async (symbol) => {
    close();
    input.value = "";
    input.blur();
    symbol = symbol.trim().toUpperCase();
    if (!symbol) return;
    if (!state.descriptions.has(symbol)) {
      const r = await tryApi(`/udf/symbols?symbol=${encodeURIComponent(symbol)}`);
      if (!r.ok) {
        toast(`unknown symbol ${symbol}`, true);
        return;
      }
      state.descriptions.set(r.data.name, r.data.description);
      symbol = r.data.name;
    }
    selectSymbol(symbol);
  };
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const q = input.value.trim();
      const mine = ++seq;
      const r = await tryApi(`/udf/search?limit=12&query=${encodeURIComponent(q)}`);
      if (mine !== seq || !r.ok) return;
      hits = r.data;
      for (const hit of hits) state.descriptions.set(hit.symbol, hit.description);
      sel = 0;
      paint();
    }, 120);
  });
  input.addEventListener("focus", () => input.dispatchEvent(new Event("input")));
  input.addEventListener("blur", () => setTimeout(close, 100));
  input.addEventListener("keydown", (ev) => {
    if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
      ev.preventDefault();
      if (!hits.length) return;
      sel = (sel + (ev.key === "ArrowDown" ? 1 : hits.length - 1)) % hits.length;
      paint();
    } else if (ev.key === "Enter") {
      ev.preventDefault();
      const typed = input.value.trim().toUpperCase();
      const exact = hits.find((x) => x.symbol === typed);
      choose(exact ? exact.symbol : hits[sel]?.symbol || typed);
    } else if (ev.key === "Escape") {
      close();
      input.blur();
    }
  });
}

// -- authentication -----------------------------------------------------------------------------
function lock(message) {
  auth.clear();
  state.unlocked = false;
  // nothing from the admin API stays on screen once locked
  state.orders = new Map();
  state.openOrders = null;
  state.positions = [];
  state.account = null;
  state.liveFills = new Map();
  chart.setFills([]);
  drawOrders();
  renderPositions([], state.quotes, { onSelect: selectSymbol });
  renderAlerts([]);
  $("#account").replaceChildren();
  $("#risk-gauges").replaceChildren();
  $("#ks-detail").textContent = "locked";
  $("#ks-badge").textContent = "—";
  $("#ks-badge").className = "badge";
  $("#journal").replaceChildren(h("p", { class: "muted" }, "locked"));
  options.lock();
  backtests.lock();
  const dlg = $("#login");
  const err = $("#login-error");
  err.hidden = !message;
  err.textContent = message || "";
  $("#login-key").value = "";
  if (!dlg.open) dlg.showModal();
}

/** The account selector: every declared account, hidden when there is only one. */
function renderAccounts(accounts) {
  const select = $("#account-select");
  const ids = accounts.map((a) => a.id);
  if (!ids.includes(account.id)) account.set(accounts.find((a) => a.default)?.id || ids[0]);
  select.replaceChildren(
    ...accounts.map((a) => {
      const label = `${a.id} (${a.broker}${a.kill_switch !== "ACTIVE" ? `, ${a.kill_switch}` : ""})`;
      const option = h("option", { value: a.id }, label);
      if (a.id === account.id) option.selected = true;
      return option;
    }),
  );
  select.hidden = accounts.length < 2;
}

async function unlock(key) {
  auth.set(key);
  const r = await tryApi("/api/v1/accounts", { admin: true });
  if (!r.ok) {
    if (r.status === 401) return lock("That key was refused (401).");
    auth.clear();
    $("#login-error").hidden = false;
    $("#login-error").textContent = `Could not check the key: ${r.error.message}`;
    return;
  }
  state.unlocked = true;
  renderAccounts(r.data.accounts);
  stream.authenticate();
  if ($("#login").open) $("#login").close();
  options.unlock();
  backtests.unlock();
  await Promise.all([refresh(), refreshJournal()]);
}

function setupAuth() {
  auth.onUnauthorized = () => {
    if (state.unlocked || !$("#login").open) lock("The API key was refused; enter it again.");
  };
  const dlg = $("#login");
  dlg.addEventListener("cancel", (ev) => ev.preventDefault()); // Escape keeps the lock
  $("#login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const key = $("#login-key").value.trim();
    if (key) unlock(key);
  });
  $("#logout").addEventListener("click", () => lock(""));
}

// -- start ---------------------------------------------------------------------------------------
async function start() {
  setupAuth();
  setupSearch();
  const prefs = loadPrefs();

  const config = await tryApi("/udf/config");
  const resolutions = config.ok ? config.data.supported_resolutions.filter((r) => LABELS[r]) : RESOLUTIONS;
  $("#resolutions").replaceChildren(
    ...resolutions.map((r) =>
      h("button", { type: "button", dataset: { res: r }, title: `Resolution ${r}`, onclick: () => selectResolution(r) }, LABELS[r]),
    ),
  );
  state.resolution = resolutions.includes(prefs.resolution) ? prefs.resolution : "5";
  for (const b of document.querySelectorAll("#resolutions button")) b.classList.toggle("on", b.dataset.res === state.resolution);

  const all = await tryApi("/udf/search?limit=50&query=");
  const known = all.ok ? all.data : [];
  for (const s of known) state.descriptions.set(s.symbol, s.description);
  state.watchlist = Array.isArray(prefs.watchlist) && prefs.watchlist.length
    ? prefs.watchlist.filter((s) => typeof s === "string").slice(0, 50)
    : known.slice(0, 10).map((s) => s.symbol);
  renderWatchlist();
  stream.connect();
  selectSymbol(prefs.symbol || state.watchlist[0] || known[0]?.symbol || "SPY");

  $("#ks-buttons").addEventListener("click", (ev) => {
    const b = ev.target.closest("button[data-state]");
    if (b) setKillSwitch(b.dataset.state);
  });
  $("#flatten-all").addEventListener("click", flattenAll);
  $("#orders-open-only").addEventListener("change", () => refresh());
  $("#account-select").addEventListener("change", (e) => {
    account.set(e.target.value);
    refresh();
  });
  $("#journal").replaceChildren(h("p", { class: "muted" }, "loading…"));

  if (auth.key) unlock(auth.key);
  else lock("");

  setInterval(() => document.visibilityState === "visible" && refresh(), POLL_MS);
  setInterval(() => document.visibilityState === "visible" && refreshJournal(), JOURNAL_MS);
  setInterval(() => document.visibilityState === "visible" && backtests.refresh(), JOURNAL_MS);
}

start();
