// The Backtests panel: the runs in TRADEROPS_BACKTEST_DIR (GET /api/v1/backtests), each
// run's report in a sandboxed frame and its CSVs as downloads. Both are fetched with the
// key: a link or a new tab could not send the X-API-Key header.
//
// The report is shown in /report-frame, an empty page of our origin served with a policy of
// its own (inline styles, no script, sandboxed): a srcdoc or blob: frame would inherit the
// console's policy, which refuses the report's inline CSS. The report is parsed into that
// frame's document, where nothing can run.
import { adminBlob, tryApi } from "./api.js";
import { $, fill, h, money, pct, sign, toast } from "./dom.js";

const COLUMNS = 8;
const FRAME = "/report-frame";
const DOWNLOADS = [
  ["orders.csv", "orders"],
  ["fills.csv", "fills"],
  ["fills_tradenote.csv", "TradeNote"],
  ["equity.csv", "equity"],
  ["summary.json", "summary"],
];
const INERT = "script, iframe, frame, object, embed, base, meta, link";

const runPath = (name) => `/api/v1/backtests/${encodeURIComponent(name)}`;
const day = (iso) => (iso ? String(iso).slice(0, 10) : "—");
const signed = (v) => (v == null ? "—" : `${v > 0 ? "+" : ""}${pct(v)}`);

async function download(name, file) {
  let blob;
  try {
    blob = await adminBlob(`${runPath(name)}/${file}`);
  } catch (err) {
    toast(`${file}: ${err.message}`, true);
    return;
  }
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: `${name}-${file}`, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

export class BacktestsPanel {
  constructor() {
    this.unlocked = false;
    this.seq = 0;
    $("#backtests-refresh").addEventListener("click", () => this.refresh());
    $("#report-close").addEventListener("click", () => $("#report-dialog").close());
    $("#report-dialog").addEventListener("close", () => $("#report-body").replaceChildren());
  }

  unlock() {
    this.unlocked = true;
    this.refresh();
  }

  lock() {
    this.unlocked = false;
    this.seq++;
    $("#backtests").replaceChildren();
    $("#backtests-count").textContent = "";
    const dlg = $("#report-dialog");
    if (dlg.open) dlg.close();
  }

  async refresh() {
    if (!this.unlocked) return;
    const mine = ++this.seq;
    const r = await tryApi("/api/v1/backtests", { admin: true });
    if (mine !== this.seq || !this.unlocked) return;
    if (!r.ok) {
      if (r.status === 401) return;
      const text = `backtests unavailable: ${r.error?.message || r.status}`;
      $("#backtests").replaceChildren(h("tr", {}, h("td", { class: "empty", colspan: COLUMNS }, text)));
      return;
    }
    this.render(r.data.backtests);
  }

  render(runs) {
    $("#backtests-count").textContent = runs.length ? `${runs.length}` : "";
    const rows = runs.map((b) =>
      h(
        "tr",
        { dataset: { name: b.name } },
        h("td", { class: "name", title: b.name }, b.name),
        h("td", { class: "from" }, day(b.from)),
        h("td", { class: "to" }, day(b.to)),
        h("td", { class: `r num pnl ${sign(b.net_pnl)}` }, money(b.net_pnl)),
        h("td", { class: `r num ret ${sign(b.return_pct)}` }, signed(b.return_pct)),
        h("td", { class: "r num trades" }, b.trades ?? "—"),
        h(
          "td",
          { class: "r num dd", title: b.max_drawdown_pct == null ? null : `${pct(b.max_drawdown_pct * 100)} of the peak` },
          money(b.max_drawdown),
        ),
        h(
          "td",
          { class: "actions" },
          b.files.includes("report.html")
            ? h("button", { type: "button", class: "report", onclick: () => this.open(b.name, b.files) }, "report")
            : null,
          DOWNLOADS.filter(([file]) => b.files.includes(file)).map(([file, label]) =>
            h(
              "button",
              { type: "button", class: "link", dataset: { file }, title: `Download ${file}`, onclick: () => download(b.name, file) },
              label,
            ),
          ),
        ),
      ),
    );
    fill($("#backtests"), rows, "no backtest yet: `trader-ops backtest JOB.yaml --from … --to …`", COLUMNS);
  }

  async open(name, files = []) {
    let html;
    try {
      html = await (await adminBlob(`${runPath(name)}/report`)).text();
    } catch (err) {
      toast(`report: ${err.message}`, true);
      return;
    }
    if (!this.unlocked) return;
    const frame = h("iframe", {
      id: "report-frame",
      sandbox: "allow-same-origin", // no allow-scripts: nothing runs in it
      referrerpolicy: "no-referrer",
      title: `Backtest report ${name}`,
    });
    const fillFrame = () => {
      const doc = frame.contentDocument;
      if (!doc || !doc.URL.endsWith(FRAME)) return; // (the initial about:blank)
      frame.removeEventListener("load", fillFrame);
      // parsed in the frame's document, under its policy (markup inserted this way never
      // runs a script; the frame allows none anyway and loads nothing)
      doc.documentElement.innerHTML = html;
      for (const el of doc.querySelectorAll(INERT)) el.remove(); // (none in ours: belt and braces)
      frame.dataset.name = name;
    };
    frame.addEventListener("load", fillFrame);
    frame.src = FRAME;
    $("#report-title").textContent = name;
    $("#report-downloads").replaceChildren(
      ...DOWNLOADS.filter(([file]) => files.includes(file)).map(([file, label]) =>
        h("button", { type: "button", class: "link", title: `Download ${file}`, onclick: () => download(name, file) }, label),
      ),
    );
    $("#report-body").replaceChildren(frame);
    const dlg = $("#report-dialog");
    if (!dlg.open) dlg.showModal();
  }
}
