// The Options panel: one expiration's chain (calls | strike | puts) of the chart's symbol
// or another, refreshed while on screen, and the account's option positions as spreads.
import { tryApi } from "./api.js";
import { $, clock, fill, h, money, num, pct, sign } from "./dom.js";

const REFRESH_MS = 15_000;
const SIDE_COLUMNS = 6; // bid, ask, delta, IV, volume, OI

/** An OCC option symbol (SPY261218C00600000): not subscribed on the quote stream. */
export const isOcc = (symbol) => /^[A-Z][A-Z0-9]{0,5}\d{6}[CP]\d{8}$/.test(symbol);

const count = (v) => (v == null ? "—" : Number(v).toLocaleString("en-US"));

/** "42 s", "3 min", "2 h 5 min": how old the greeks are. */
export function age(seconds) {
  if (seconds == null) return "—";
  const s = Math.max(0, Math.round(seconds));
  if (s < 90) return `${s} s`;
  const m = Math.round(s / 60);
  if (m < 90) return `${m} min`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

// -- the chain ----------------------------------------------------------------------------
function sideCells(q, right, atm) {
  if (!q) return Array.from({ length: SIDE_COLUMNS }, () => h("td", { class: "r muted" }, ""));
  const cells = [
    h("td", { class: "r bid" }, num(q.bid)),
    h("td", { class: "r ask" }, num(q.ask)),
    h("td", { class: "r delta" }, num(q.delta, 3)),
    h("td", { class: "r iv" }, q.iv == null ? "—" : pct(q.iv * 100, 1)),
    h("td", { class: "r vol" }, count(q.volume)),
    h("td", { class: "r oi" }, count(q.open_interest)),
  ];
  for (const c of cells) {
    c.title = q.symbol;
    if (atm.itm) c.classList.add("itm");
  }
  return right === "call" ? callOrder(cells) : cells;
}

/** Calls mirror the puts around the strike: OI, Vol, IV, Δ, Bid, Ask | strike. */
function callOrder(cells) {
  const [bid, ask, delta, iv, vol, oi] = cells;
  return [oi, vol, iv, delta, bid, ask];
}

export function renderChain(chain) {
  const calls = new Map();
  const puts = new Map();
  for (const c of chain.contracts) (c.right === "call" ? calls : puts).set(c.strike, c);
  const strikes = [...new Set(chain.contracts.map((c) => c.strike))].sort((a, b) => a - b);
  const spot = chain.underlying_price;
  const rows = strikes.map((k) => {
    const atm = k === chain.atm_strike;
    return h(
      "tr",
      { class: atm ? "atm" : null, dataset: { strike: k } },
      sideCells(calls.get(k), "call", { itm: spot != null && k < spot }),
      h("td", { class: "strike num", title: atm ? "at the money" : null }, num(k)),
      sideCells(puts.get(k), "put", { itm: spot != null && k > spot }),
    );
  });
  fill($("#options-chain"), rows, "no contracts listed", SIDE_COLUMNS * 2 + 1);
  $("#options-spot").textContent = spot == null ? "" : `${chain.underlying} ${num(spot)}`;
  const age_ = $("#options-age");
  age_.textContent = `greeks ${age(chain.greeks_age)} old`;
  age_.title = `greeks of ${clock(chain.greeks_time)}, chain fetched ${clock(chain.fetched_at)}`;
  age_.classList.toggle("stale", chain.greeks_age != null && chain.greeks_age > 3600);
}

function chainMessage(text) {
  $("#options-chain").replaceChildren(
    h("tr", {}, h("td", { class: "empty", colspan: SIDE_COLUMNS * 2 + 1, id: "options-message" }, text)),
  );
  $("#options-spot").textContent = "";
  $("#options-age").textContent = "";
}

/** Scroll the chain (not the page) so the at-the-money strike is in the middle. */
function centreAtm() {
  const wrap = $("#options-chain-wrap");
  const row = wrap.querySelector("tr.atm");
  if (row) wrap.scrollTop = Math.max(0, row.offsetTop - wrap.clientHeight / 2);
}

// -- positions as spreads -----------------------------------------------------------------
const LEG_RIGHT = { call: "C", put: "P" };

function legLabel(leg) {
  const d = new Date(`${leg.expiration}T00:00:00Z`);
  const day = d.toLocaleDateString("en-GB", { day: "2-digit", month: "short", timeZone: "UTC" });
  return `${day} ${num(leg.strike, leg.strike % 1 ? 2 : 0)} ${LEG_RIGHT[leg.right] || leg.right}`;
}

function greekCells(x) {
  return [
    h("td", { class: "r delta" }, num(x.delta, 1)),
    h("td", { class: "r gamma" }, num(x.gamma, 2)),
    h("td", { class: "r theta" }, num(x.theta, 2)),
    h("td", { class: "r vega" }, num(x.vega, 2)),
  ];
}

export function renderSpreads(groups) {
  const rows = [];
  for (const g of groups) {
    const key = `${g.strategy}|${g.underlying}`;
    rows.push(
      h(
        "tr",
        { class: "group", dataset: { group: key, kind: g.kind } },
        h(
          "td",
          { colspan: 4 },
          h("b", {}, g.underlying),
          " ",
          h("span", { class: "kind" }, g.kind),
          h("span", { class: "muted small" }, ` · ${g.strategy}`),
        ),
        h("td", { class: "r cost" }, money(g.net_cost)),
        h("td", { class: `r upnl ${sign(g.unrealized_pnl)}` }, money(g.unrealized_pnl)),
        greekCells(g),
      ),
    );
    for (const leg of g.legs) {
      rows.push(
        h(
          "tr",
          { class: "leg", dataset: { group: key, symbol: leg.symbol }, title: leg.symbol },
          h("td", { class: "muted" }, legLabel(leg)),
          h("td", { class: `r ${sign(leg.quantity)}` }, leg.quantity),
          h("td", { class: "r" }, num(leg.avg_price)),
          h("td", { class: "r mark" }, num(leg.mark)),
          h("td", { class: "r" }, money(leg.cost)),
          h("td", { class: `r ${sign(leg.unrealized_pnl)}` }, money(leg.unrealized_pnl)),
          greekCells(leg),
        ),
      );
    }
  }
  fill($("#option-groups"), rows, "no option positions", 10);
}

// -- the panel ------------------------------------------------------------------------------
export class OptionsPanel {
  /** `symbol()`: the chart's symbol, what the panel shows unless another is typed. */
  constructor({ symbol }) {
    this.chartSymbol = symbol;
    this.symbol = null;
    this.expiration = null; // null: the soonest listed
    this.expirations = [];
    this.unlocked = false;
    this.visible = false;
    this.seq = 0;
    this.timer = 0;
    this.centred = null; // the expiration whose ATM row was last scrolled to

    $("#options-symbol-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const typed = $("#options-symbol").value.trim().toUpperCase();
      if (typed) this.show(typed);
    });
    $("#options-expiration").addEventListener("change", (ev) => {
      this.expiration = ev.target.value || null;
      this.loadChain();
    });
    $("#options-refresh").addEventListener("click", () => this.loadChain());
    new IntersectionObserver((entries) => {
      this.visible = entries.some((e) => e.isIntersecting);
      if (this.visible) this.loadChain();
    }).observe($("#options-panel"));
    document.addEventListener("visibilitychange", () => document.visibilityState === "visible" && this.loadChain());
    setInterval(() => this.tick(), REFRESH_MS);
  }

  get onScreen() {
    return this.unlocked && this.visible && document.visibilityState === "visible";
  }

  tick() {
    this.loadChain();
  }

  /** The chart switched symbol: follow it. */
  follow() {
    this.show(this.chartSymbol());
  }

  show(symbol) {
    if (!symbol) return;
    $("#options-symbol").value = symbol;
    if (symbol === this.symbol && this.expirations.length) return;
    this.symbol = symbol;
    this.expiration = null;
    this.expirations = [];
    this.centred = null;
    $("#options-expiration").replaceChildren();
    if (this.unlocked) this.loadChain();
  }

  unlock() {
    this.unlocked = true;
    if (!this.symbol) this.follow();
    else this.loadChain();
  }

  lock() {
    this.unlocked = false;
    this.expirations = [];
    this.seq++;
    $("#options-expiration").replaceChildren();
    chainMessage("locked");
    renderSpreads([]);
  }

  async loadExpirations(mine) {
    const r = await tryApi(`/api/v1/options/expirations?symbol=${encodeURIComponent(this.symbol)}`, { admin: true });
    if (mine !== this.seq) return false;
    if (!r.ok) {
      chainMessage(r.error?.message || `HTTP ${r.status}`);
      return false;
    }
    this.expirations = r.data.expirations;
    $("#options-expiration").replaceChildren(
      ...this.expirations.map((d) => h("option", { value: d }, d)),
    );
    return true;
  }

  async loadChain() {
    if (!this.onScreen || !this.symbol) return;
    const mine = ++this.seq;
    if (!this.expirations.length && !(await this.loadExpirations(mine))) return;
    let path = `/api/v1/options/chain?symbol=${encodeURIComponent(this.symbol)}`;
    if (this.expiration) path += `&expiration=${encodeURIComponent(this.expiration)}`;
    const r = await tryApi(path, { admin: true });
    if (mine !== this.seq) return; // a newer request (another symbol or expiration) won
    if (!r.ok) {
      if (r.status === 404 && this.expiration) this.expirations = []; // the list moved on
      chainMessage(r.error?.message || `HTTP ${r.status}`);
      return;
    }
    const chain = r.data;
    this.expiration = chain.expiration;
    $("#options-expiration").value = chain.expiration;
    renderChain(chain);
    if (this.centred !== chain.expiration) {
      this.centred = chain.expiration;
      centreAtm();
    }
  }
}
