// Tiny DOM helpers. Text always goes through textContent: alert fields come from outside.

export const $ = (sel) => document.querySelector(sel);

/** h("td", {class: "r"}, "text", childNode, ...) */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "style") el.style.cssText = v; // CSSOM, allowed by the page's CSP
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function fill(tbody, rows, emptyText, columns) {
  if (!rows.length) {
    tbody.replaceChildren(h("tr", {}, h("td", { class: "empty", colspan: columns }, emptyText)));
    return;
  }
  tbody.replaceChildren(...rows);
}

export const num = (v, digits = 2) =>
  v == null || Number.isNaN(Number(v))
    ? "—"
    : Number(v).toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });

export const money = (v) => (v == null ? "—" : `${v < 0 ? "-" : ""}$${num(Math.abs(v))}`);

export const pct = (v, digits = 2) => (v == null ? "—" : `${num(v, digits)}%`);

export const sign = (v) => (v > 0 ? "up" : v < 0 ? "down" : "");

export function clock(ts) {
  if (!ts) return "—";
  const d = new Date(ts * 1000);
  const today = new Date();
  const t = d.toLocaleTimeString("en-GB", { hour12: false });
  return d.toDateString() === today.toDateString() ? t : `${d.toISOString().slice(5, 10)} ${t}`;
}

export function toast(text, bad = false) {
  const el = h("div", { class: `toast${bad ? " bad" : ""}`, role: bad ? "alert" : "status" }, text);
  $("#toasts").append(el);
  setTimeout(() => el.remove(), bad ? 7000 : 3500);
}
