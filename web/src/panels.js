// Rendering of the side panels. Pure functions of the data they are given.
import { $, clock, fill, h, money, num, pct, sign } from "./dom.js";

const TERMINAL = new Set(["filled", "canceled", "rejected", "expired"]);

const status = (s, title) => h("span", { class: `status ${s}`, title }, s.replace("_", " "));

// -- orders -------------------------------------------------------------------------
export function renderOrders(orders, { onCancel }) {
  const rows = orders.map((o) => {
    const r = o.request;
    const type =
      r.order_type === "market"
        ? "mkt"
        : `${r.order_type} ${num(r.limit_price ?? r.stop_price)}`;
    const open = !TERMINAL.has(o.status);
    return h(
      "tr",
      { dataset: { id: o.id, symbol: r.symbol, status: o.status } },
      h("td", { title: o.id }, clock(o.created_at)),
      h("td", {}, r.symbol, legsOf(r)),
      h(
        "td",
        { class: r.intent === "buy" || r.intent === "buy_to_cover" ? "up" : "down" },
        r.intent.replaceAll("_", " "),
        r.net && r.legs?.length ? h("span", { class: "muted small" }, ` · ${r.net}`) : null,
      ),
      h("td", { class: "r" }, r.quantity),
      h("td", {}, type),
      h("td", { class: "r" }, o.filled_quantity),
      h("td", { class: "r" }, num(o.avg_fill_price)),
      h("td", {}, status(o.status, o.reason || "")),
      h(
        "td",
        { class: "r" },
        open && h("button", { type: "button", class: "x cancel", title: "Cancel order", onclick: () => onCancel(o) }, "cancel"),
      ),
    );
  });
  fill($("#orders"), rows, "no orders", 9);
}

/** A leg's position effect, as option brokers say it (OrderLeg's intent). */
const LEG_SIDE = {
  buy: "buy to open",
  sell_short: "sell to open",
  sell: "sell to close",
  buy_to_cover: "buy to close",
};

/** A spread order's legs under its symbol (the underlying): side, ratio, contract. */
function legsOf(r) {
  if (!r.legs?.length) return null;
  return h(
    "div",
    { class: "legs muted small" },
    r.legs.map((leg) =>
      h(
        "div",
        { class: "leg", dataset: { symbol: leg.symbol, intent: leg.intent } },
        `${LEG_SIDE[leg.intent] || leg.intent} ${leg.ratio ?? 1}× ${leg.symbol}`,
      ),
    ),
  );
}

// -- positions and account ----------------------------------------------------------------
/**
 * A position priced at the quote the console shows for it: the stream's last, else the
 * book's stored mark. The one pricing both the Positions and the Account panels use, so
 * they never show two unrealised P&Ls side by side.
 */
export function priced(p, quotes) {
  const last = quotes.get(p.symbol)?.last ?? p.last_price;
  const mult = p.multiplier ?? 1; // 100 for an option contract, a future's point value
  return { last, upnl: last == null ? null : (last - p.avg_price) * p.quantity * mult };
}

export function renderPositions(positions, quotes, { onSelect }) {
  const rows = positions
    .filter((p) => p.quantity !== 0)
    .map((p) => {
      const { last, upnl } = priced(p, quotes);
      return h(
        "tr",
        { class: "click", dataset: { symbol: p.symbol }, onclick: () => onSelect(p.symbol) },
        h("td", {}, p.symbol, strategiesOf(p)),
        h("td", { class: `r ${sign(p.quantity)}` }, p.quantity),
        h("td", { class: "r" }, num(p.avg_price)),
        h("td", { class: "r last" }, num(last)),
        h("td", { class: `r upnl ${sign(upnl)}` }, money(upnl)),
        h("td", { class: `r ${sign(p.realized_pnl)}` }, money(p.realized_pnl)),
      );
    });
  fill($("#positions"), rows, "flat", 6);
}

/** Each strategy's share of the position ("momentum 10 · s1 -3"), when it is not all one
 * plain strategy's. */
function strategiesOf(p) {
  const parts = p.strategies || [];
  if (!parts.length || (parts.length === 1 && parts[0].strategy === "default")) return null;
  const text = parts.map((s) => `${s.strategy} ${s.quantity}`).join(" · ");
  return h("div", { class: "muted small strategies", title: "by strategy" }, text);
}

/** Live unrealised P&L between refreshes, in place. */
export function tickPositions(positions, quotes) {
  for (const p of positions) {
    const row = document.querySelector(`#positions tr[data-symbol="${CSS.escape(p.symbol)}"]`);
    if (!row || !quotes.has(p.symbol)) continue;
    const { last, upnl } = priced(p, quotes);
    row.querySelector(".last").textContent = num(last);
    const cell = row.querySelector(".upnl");
    cell.textContent = money(upnl);
    cell.className = `r upnl ${sign(upnl)}`;
  }
}

/**
 * The account as the server stores it, with the figures that move with prices (unrealised
 * P&L, equity, gross exposure) re-priced like the positions beside it: the server's come
 * from the book's marks as last stored, seconds older than the stream's quotes. Buying
 * power stays the engine's.
 */
export function renderAccount(a, positions, quotes) {
  let { unrealized_pnl: upnl, equity, gross_exposure: gross } = a;
  const open = positions.filter((p) => p.quantity !== 0);
  if (open.length) {
    upnl = 0;
    equity = a.cash;
    gross = 0;
    for (const p of open) {
      const { last, upnl: u } = priced(p, quotes);
      const price = (last ?? p.avg_price) * (p.multiplier ?? 1); // an option contract: x100
      upnl += u ?? 0;
      equity += p.quantity * price;
      gross += Math.abs(p.quantity) * price;
    }
  }
  const items = [
    ["Account", a.account],
    ["Equity", money(equity)],
    ["Cash", money(a.cash)],
    ["Buying power", money(a.buying_power)],
    ["Realised today", money(a.realized_pnl_today), sign(a.realized_pnl_today)],
    ["Unrealised", money(upnl), sign(upnl)],
    ["Gross exposure", money(gross)],
    ["Open positions", a.open_positions],
  ];
  $("#account").replaceChildren(...items.flatMap(([k, v, c]) => [h("dt", {}, k), h("dd", { class: c }, v)]));
}

// -- risk ----------------------------------------------------------------------------
function gauge(label, used, limit, text) {
  const ratio = limit ? Math.max(0, Math.min(1, used / limit)) : 0;
  const cls = ratio >= 1 ? "bad" : ratio >= 0.8 ? "warn" : "";
  return h(
    "div",
    { class: "gauge", title: `${label}: ${text}` },
    h("span", {}, label),
    h("span", { class: "bar" }, h("i", { class: cls, style: `width:${(ratio * 100).toFixed(1)}%` })),
    h("span", { class: "v" }, text),
  );
}

function line(label, text, cls = "") {
  return h("div", { class: "gauge" }, h("span", {}, label), h("span", { class: cls }, text), h("span"));
}

export function renderRisk(risk) {
  const ks = risk.kill_switch || {};
  const state = ks.state || "—";
  const badge = $("#ks-badge");
  badge.textContent = state;
  badge.className = `badge ${state}`;
  for (const b of document.querySelectorAll("#ks-buttons button")) {
    b.classList.toggle("on", b.dataset.state === state);
    b.setAttribute("aria-pressed", String(b.dataset.state === state));
  }
  $("#ks-detail").textContent =
    `Kill switch ${state} since ${clock(ks.changed_at)}` + (ks.reason ? ` — ${ks.reason}` : "");

  const checks = Object.fromEntries((risk.checks || []).map((c) => [c.name, c.status || {}]));
  const out = [];
  const daily = risk.daily || {};
  if (daily.loss_limit) {
    const loss = Math.max(0, -(daily.pnl || 0));
    out.push(gauge("Daily loss", loss, daily.loss_limit, `${money(daily.pnl)} / -${money(daily.loss_limit)}`));
  }
  const lev = checks.leverage;
  if (lev?.limit) out.push(gauge("Leverage", lev.used, lev.limit, `${num(lev.used)}x / ${num(lev.limit, 1)}x`));
  const mop = checks.max_open_positions;
  if (mop?.limit) out.push(gauge("Open positions", mop.used, mop.limit, `${mop.used} / ${mop.limit}`));
  const conc = checks.concentration;
  if (conc?.limit_pct) out.push(gauge("Concentration", conc.used_pct, conc.limit_pct, `${pct(conc.used_pct, 1)} / ${pct(conc.limit_pct, 0)}`));
  const sec = checks.sector_concentration;
  if (sec?.limit_pct) {
    const used = Math.max(0, ...Object.values(sec.used_pct || {}));
    out.push(gauge("Sector conc.", used, sec.limit_pct, `${pct(used, 1)} / ${pct(sec.limit_pct, 0)}`));
  }
  const rl = checks.rate_limit;
  if (rl?.global) out.push(gauge("Orders/window", rl.global.used, rl.global.limit, `${rl.global.used} / ${rl.global.limit} per ${rl.global.window_s}s`));
  if (rl?.per_symbol) out.push(gauge("Orders/symbol", rl.per_symbol.used_max, rl.per_symbol.limit, `${rl.per_symbol.used_max} / ${rl.per_symbol.limit}`));
  const ps = checks.position_size;
  if (ps?.max_shares) out.push(gauge("Largest position", ps.largest_shares || 0, ps.max_shares, `${ps.largest_shares || 0} / ${ps.max_shares} sh`));
  const cb = risk.circuit_breaker;
  if (cb) {
    const detail = cb.state === "CLOSED" ? `${cb.errors_in_window} errors, ${cb.calls_in_window} calls` : `${cb.trip_reason || ""} reopens ${clock(cb.reopens_at)}`;
    out.push(line("Circuit breaker", `${cb.state} · ${detail}`, cb.state === "CLOSED" ? "" : "down"));
  }
  const mh = risk.market_hours;
  if (mh) out.push(line("Market", `${mh.open ? "open" : "closed"} (${mh.mode})`, mh.open ? "" : "down"));
  if (risk.account) out.push(line("Working orders", String(risk.account.working_orders ?? 0)));
  $("#risk-gauges").replaceChildren(...out);
}

// -- alerts --------------------------------------------------------------------------
export function renderAlerts(alerts) {
  const rows = alerts.map((a) =>
    h(
      "tr",
      { dataset: { alertId: a.alert_id, status: a.status } },
      h("td", { title: a.alert_id }, clock(a.time)),
      h("td", {}, a.symbol || "—"),
      h("td", {}, a.action || "—"),
      h("td", { class: "r" }, a.quantity ?? "—"),
      h("td", {}, status(a.status), a.duplicate ? h("span", { class: "muted small" }, " dup") : null),
      h("td", { class: "check" }, a.check || ""),
      h("td", { class: "wrap reason", title: a.message || "" }, a.reason || (a.status === "accepted" ? "" : a.message || "")),
      h("td", { class: "muted" }, a.strategy || ""),
    ),
  );
  fill($("#alerts"), rows, "no alerts yet", 8);
}

// -- journal -------------------------------------------------------------------------
export function renderJournalUnavailable(why) {
  $("#journal").replaceChildren(
    h("p", { class: "muted", id: "journal-unavailable" }, "journal analytics unavailable"),
    why ? h("p", { class: "muted small" }, why) : null,
  );
}

export function renderJournal(analytics, calendar) {
  const t = analytics.total || {};
  const tiles = [
    ["Net P&L", money(t.total_pnl), sign(t.total_pnl)],
    ["Trades", t.trades ?? "—"],
    ["Win rate", t.win_rate == null ? "—" : pct(t.win_rate * 100, 1)],
    ["Profit factor", num(t.profit_factor)],
    ["Expectancy", money(t.expectancy), sign(t.expectancy)],
    ["Sharpe", num(t.sharpe)],
    ["Max drawdown", money(t.max_drawdown)],
    ["Days traded", t.days_traded ?? "—"],
  ];
  const headline = h(
    "div",
    { class: "headline", id: "journal-headline" },
    tiles.map(([k, v, c]) => h("div", {}, h("span", {}, k), h("b", { class: c }, v))),
  );

  const days = calendar.days || [];
  const maxAbs = Math.max(1e-9, ...days.map((d) => Math.abs(d.pnl || 0)));
  const cells = [];
  if (days.length) {
    const first = new Date(`${days[0].date}T00:00:00Z`);
    const pad = (first.getUTCDay() + 6) % 7; // rows are Monday..Sunday
    for (let i = 0; i < pad; i++) cells.push(h("i", { class: "pad" }));
  }
  for (const d of days) {
    const p = d.pnl || 0;
    const a = d.fills ? 0.25 + 0.75 * Math.min(1, Math.abs(p) / maxAbs) : 0;
    const color = !d.fills ? null : p > 0 ? `rgba(38,166,154,${a})` : p < 0 ? `rgba(239,83,80,${a})` : "#56606c";
    cells.push(
      h("i", {
        dataset: { date: d.date, pnl: p },
        style: color ? `background:${color}` : null,
        title: `${d.date}: ${money(p)} · ${d.trades} trades · ${d.fills} fills`,
      }),
    );
  }
  const legend = h(
    "div",
    { class: "legend" },
    h("span", {}, `${calendar.start} → ${calendar.end}`),
    h("span", { class: sign(calendar.total) }, `total ${money(calendar.total)}`),
    calendar.best && h("span", {}, `best ${calendar.best.date.slice(5)} ${money(calendar.best.pnl)}`),
    calendar.worst && h("span", {}, `worst ${calendar.worst.date.slice(5)} ${money(calendar.worst.pnl)}`),
  );
  $("#journal").replaceChildren(headline, h("div", { class: "heatmap", id: "journal-calendar" }, cells), legend);
}
