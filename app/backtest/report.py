"""``report.html``: one self-contained page per run (inline CSS and SVG, no script, no
network): the summary figures, the equity curve, the drawdown, monthly returns as a heat
map, denials by check and the round trips.

The charts are SVG written here rather than drawn with matplotlib: two line charts and
a table need ~100 lines, matplotlib would add ~40 MB of wheels (pillow, fonttools,
kiwisolver, contourpy) and its SVG embeds glyph paths that change with its version and
FreeType's, where this page must be the same byte for byte for the same run.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from app.backtest.metrics import daily_closes, session_bounds
from app.journal.analytics import Trip

WIDTH, HEIGHT, PAD_L, PAD_R, PAD_T, PAD_B = 900, 260, 92, 16, 12, 28
X_LABELS = 5  # dates under a chart, evenly spaced
MAX_POINTS = 2000  # a longer curve keeps each bucket's first, lowest, highest and last
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
TZ = ZoneInfo("America/New_York")
NA = "\u2013"  # a figure that has no value (no trades, one day)

CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;
color:#1f2933;background:#fff}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px}
.sub{color:#616e7c;margin-bottom:16px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:8px}
.card{border:1px solid #e4e7eb;border-radius:6px;padding:8px 10px}
.card .k{color:#616e7c;font-size:12px}.card .v{font-size:17px;font-weight:600}
table{border-collapse:collapse;font-size:13px}
th,td{border-bottom:1px solid #e4e7eb;padding:4px 8px;text-align:right;white-space:nowrap}
th{background:#f5f7fa;font-weight:600}td.l,th.l{text-align:left}
.pos{color:#137333}.neg{color:#b3261e}
.heat td{border:1px solid #fff;min-width:52px}
svg{display:block;max-width:100%;height:auto}
svg text{font:11px system-ui,sans-serif;fill:#616e7c}
"""


def _money(v: float | None) -> str:
    if v is None:
        return NA
    return f"-${-v:,.2f}" if v < 0 else f"${v:,.2f}"


def _pct(v: float | None, digits: int = 2) -> str:
    return NA if v is None else f"{v * 100:+.{digits}f}%"


def _num(v: float | None, digits: int = 2) -> str:
    return NA if v is None else f"{v:,.{digits}f}"


def _when(t: float | None) -> str:
    return "open" if not t else datetime.fromtimestamp(t, TZ).strftime("%Y-%m-%d %H:%M")


def _days(seconds: float | None) -> str:
    return NA if seconds is None else f"{seconds / 86_400:.1f} d"


def _sign(v: float | None) -> str:
    return "" if not v else ("pos" if v > 0 else "neg")


def decimate(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """At most ~``MAX_POINTS`` points with each bucket's extremes kept (in time order)."""
    if len(points) <= MAX_POINTS:
        return list(points)
    size = -(-len(points) // (MAX_POINTS // 4))
    out: list[tuple[float, float]] = []
    for i in range(0, len(points), size):
        bucket = points[i : i + size]
        keep = {0, len(bucket) - 1}
        keep.add(min(range(len(bucket)), key=lambda j: bucket[j][1]))
        keep.add(max(range(len(bucket)), key=lambda j: bucket[j][1]))
        out.extend(bucket[j] for j in sorted(keep))
    return out


def line_chart(points: Sequence[tuple[float, float]], *, color: str, fill: bool, label: Any) -> str:
    """An SVG chart of ``[(epoch s, value)]``: a polyline (or a filled area down to 0),
    the lowest and highest values on the y axis, the first and last dates on the x axis."""
    if not points:
        return '<p class="sub">no data</p>'
    pts = decimate(points)
    t0, t1 = pts[0][0], pts[-1][0]
    values = [v for _, v in pts] + ([0.0] if fill else [])
    lo, hi = min(values), max(values)
    if hi - lo < 1e-9:
        lo, hi = lo - 1.0, hi + 1.0
    span_t = (t1 - t0) or 1.0
    w, h = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B

    def xy(t: float, v: float) -> str:
        x = PAD_L + (t - t0) / span_t * w
        y = PAD_T + (hi - v) / (hi - lo) * h
        return f"{x:.1f},{y:.1f}"

    line = " ".join(xy(t, v) for t, v in pts)
    parts = [
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img">',
        f'<rect x="{PAD_L}" y="{PAD_T}" width="{w}" height="{h}" fill="#fafbfc" stroke="#e4e7eb"/>',
    ]
    for v in (lo, (lo + hi) / 2, hi):
        y = PAD_T + (hi - v) / (hi - lo) * h
        parts.append(
            f'<line x1="{PAD_L}" x2="{PAD_L + w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e4e7eb"/>'
            f'<text x="{PAD_L - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(label(v))}</text>'
        )
    if fill:
        base = f"{xy(t1, 0.0)} {xy(t0, 0.0)}"
        parts.append(f'<polygon points="{line} {base}" fill="{color}" fill-opacity="0.35"/>')
    parts.append(f'<polyline points="{line}" fill="none" stroke="{color}" stroke-width="1.5"/>')
    for i in range(X_LABELS):
        anchor = "start" if i == 0 else "end" if i == X_LABELS - 1 else "middle"
        day = datetime.fromtimestamp(t0 + span_t * i / (X_LABELS - 1), TZ).strftime("%Y-%m-%d")
        x = PAD_L + w * i / (X_LABELS - 1)
        parts.append(f'<text x="{x:.1f}" y="{HEIGHT - 8}" text-anchor="{anchor}">{day}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def underwater(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The drawdown at each point as a (negative) fraction of the running peak."""
    out, peak = [], float("-inf")
    for t, v in points:
        peak = max(peak, v)
        out.append((t, (v / peak - 1.0) if peak > 0 else 0.0))
    return out


def monthly_returns(
    equity: Sequence[tuple[float, float]], starting: float, start: date, end: date, calendar: str
) -> dict[tuple[int, int], float]:
    """(year, month) -> the month's return, from the equity at each month's last session."""
    days = [d for d, _, _ in session_bounds(start, end, calendar)]
    closes = daily_closes(equity, days, starting, calendar)
    month_end: dict[tuple[int, int], float] = {}
    for day, value in zip(days, closes, strict=True):
        month_end[(day.year, day.month)] = value
    out, previous = {}, starting
    for key in sorted(month_end):
        out[key] = month_end[key] / previous - 1.0 if previous > 0 else 0.0
        previous = month_end[key]
    return out


def _heat_color(r: float, scale: float) -> str:
    """Green for gains, red for losses, stronger with size (relative to ``scale``)."""
    a = min(abs(r) / scale, 1.0) if scale > 0 else 0.0
    base = (19, 115, 51) if r >= 0 else (179, 38, 30)
    rgb = [round(255 + (c - 255) * a * 0.8) for c in base]
    return f"#{rgb[0]:02x}{rgb[1]:02x}{rgb[2]:02x}"


def heat_map(months: dict[tuple[int, int], float]) -> str:
    if not months:
        return '<p class="sub">no sessions in the range</p>'
    scale = max(abs(r) for r in months.values()) or 1.0
    rows = ['<table class="heat"><tr><th class="l">Year</th>']
    rows += [f"<th>{m}</th>" for m in MONTHS]
    rows.append("<th>Year</th></tr>")
    for year in sorted({y for y, _ in months}):
        rows.append(f'<tr><td class="l">{year}</td>')
        compound = 1.0
        for month in range(1, 13):
            r = months.get((year, month))
            if r is None:
                rows.append("<td></td>")
                continue
            compound *= 1.0 + r
            rows.append(f'<td style="background:{_heat_color(r, scale)}">{_pct(r)}</td>')
        rows.append(f'<td class="{_sign(compound - 1.0)}">{_pct(compound - 1.0)}</td></tr>')
    rows.append("</table>")
    return "".join(rows)


def trades_table(trips: Sequence[Trip]) -> str:
    if not trips:
        return '<p class="sub">no round trips</p>'
    head = ["Symbol", "Side", "Strategy", "Entry", "Exit", "Gross", "Commission", "Net"]
    rows = ["<table><tr>"]
    rows += [f'<th class="{"l" if i < 5 else ""}">{h}</th>' for i, h in enumerate(head)]
    rows.append("</tr>")
    for trip in trips:
        cells = [
            (escape(trip.symbol), "l"),
            ("long" if trip.long else "short", "l"),
            (escape(trip.strategy), "l"),
            (_when(trip.entry_time), "l"),
            (_when(trip.exit_time), "l"),
            (_money(trip.gross), _sign(trip.gross)),
            (_money(trip.commission), ""),
            (_money(trip.net), _sign(trip.net)),
        ]
        rows.append("<tr>" + "".join(f'<td class="{c}">{v}</td>' for v, c in cells) + "</tr>")
    rows.append("</table>")
    return "".join(rows)


def denials_table(by_check: dict[str, int]) -> str:
    if not by_check:
        return '<p class="sub">no denials</p>'
    rows = ['<table><tr><th class="l">Check</th><th>Denials</th></tr>']
    rows += [
        f'<tr><td class="l">{escape(check or "(none)")}</td><td>{n}</td></tr>'
        for check, n in sorted(by_check.items())
    ]
    rows.append("</table>")
    return "".join(rows)


def cards(m: dict[str, Any], decisions: dict[str, int]) -> str:
    items = [
        ("Net P&L", _money(m["net_pnl"])),
        ("Total return", _pct(m["total_return"])),
        ("CAGR", _pct(m["cagr"])),
        ("Sharpe", _num(m["sharpe"])),
        ("Sortino", _num(m["sortino"])),
        ("Max drawdown", f"{_money(m['max_drawdown'])} ({_pct(-(m['max_drawdown_pct'] or 0))})"),
        ("Drawdown duration", _days(m["max_drawdown_duration_seconds"])),
        ("Exposure", NA if m["exposure"] is None else f"{m['exposure'] * 100:.1f}%"),
        ("Trades", str(m["trades"])),
        ("Win rate", NA if m["win_rate"] is None else f"{m['win_rate'] * 100:.1f}%"),
        ("Profit factor", _num(m["profit_factor"])),
        ("Expectancy", _money(m["expectancy"])),
        ("Commissions", _money(m["commissions"])),
        ("Fills", str(m["fills"])),
        ("Alerts", str(sum(decisions.values()))),
        ("Denials", str(m["denials"])),
        ("Starting equity", _money(m["starting_equity"])),
        ("Final equity", _money(m["final_equity"])),
    ]
    body = "".join(
        f'<div class="card"><div class="k">{k}</div><div class="v">{escape(v)}</div></div>'
        for k, v in items
    )
    return f'<div class="cards">{body}</div>'


def render(
    summary: dict[str, Any],
    equity: Sequence[tuple[float, float]],
    trips: Sequence[Trip],
    errors: Sequence[str],
) -> bytes:
    """The page for a run: ``summary`` is ``results.summary``'s (its ``metrics`` and
    ``decisions``), ``equity`` the run's curve, ``trips`` its round trips."""
    m = summary["metrics"]
    start = datetime.fromisoformat(summary["from"])
    end = datetime.fromisoformat(summary["to"])
    origin = datetime.fromisoformat(m["curve_start"]).timestamp()
    curve = [(origin, float(summary["starting_equity"])), *equity]
    months = monthly_returns(
        equity, float(summary["starting_equity"]), start.date(), end.date(), m["calendar"]
    )
    name = escape(str(summary["name"]))
    decisions = ", ".join(f"{escape(k)} {v}" for k, v in summary["decisions"].items()) or "none"
    sections = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Backtest {name}</title><style>{CSS}</style></head><body>",
        f"<h1>Backtest: {name}</h1>",
        f'<div class="sub">{start.date()} to {end.date()} · {m["sessions"]} sessions · '
        f"{summary['runs']} runs · decisions: {decisions}</div>",
        cards(m, summary["decisions"]),
        "<h2>Equity</h2>",
        line_chart(curve, color="#1a73e8", fill=False, label=_money),
        "<h2>Drawdown</h2>",
        line_chart(underwater(curve), color="#b3261e", fill=True, label=lambda v: _pct(v, 1)),
        "<h2>Monthly returns</h2>",
        heat_map(months),
        "<h2>Denials by check</h2>",
        denials_table(m["denials_by_check"]),
        f"<h2>Round trips ({len(trips)})</h2>",
        trades_table(trips),
    ]
    if errors:
        sections.append("<h2>Errors</h2><ul>")
        sections += [f"<li>{escape(e)}</li>" for e in errors]
        sections.append("</ul>")
    sections.append(
        f'<p class="sub">{escape(m["basis"])}. Times in America/New_York; '
        f"generated from the run's files only (no clock, no network).</p>"
    )
    sections.append("</body></html>\n")
    return "\n".join(sections).encode()
