// The candle chart: history from /api/v1/history, live bars from stream quotes, fills as markers.
import {
  CandlestickSeries,
  ColorType,
  CrosshairMode,
  HistogramSeries,
  createChart,
  createSeriesMarkers,
} from "lightweight-charts";
import { api } from "./api.js";

export const UP = "#26a69a";
export const DOWN = "#ef5350";
const PAGE = 500; // bars per history request

/** Start (Unix seconds, UTC) of the bar holding `ts`: the datahub's Resolution.bar_start. */
export function barStart(resolution, ts) {
  ts = Math.floor(ts);
  if (/^\d+$/.test(resolution)) {
    const step = Number(resolution) * 60;
    return ts - (ts % step);
  }
  const day = ts - (ts % 86400);
  if (resolution === "1D") return day;
  const d = new Date(day * 1000);
  if (resolution === "1W") return day - ((d.getUTCDay() + 6) % 7) * 86400;
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1) / 1000;
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const pad = (n) => String(n).padStart(2, "0");

/** Date parts of a bar time: local for intraday bars, UTC for D/W/M (their time is a UTC date). */
function parts(t, intraday) {
  const d = new Date(t * 1000);
  return intraday
    ? { y: d.getFullYear(), m: d.getMonth(), d: d.getDate(), hh: d.getHours(), mm: d.getMinutes() }
    : { y: d.getUTCFullYear(), m: d.getUTCMonth(), d: d.getUTCDate(), hh: 0, mm: 0 };
}

function fmt(v, digits = 2) {
  return v == null ? "—" : Number(v).toFixed(digits);
}

export class PriceChart {
  constructor(el, { onError, onOhlc }) {
    this.el = el;
    this.onError = onError;
    this.onOhlc = onOhlc;
    this.symbol = null;
    this.resolution = "5";
    this.bars = [];
    this.fills = [];
    this.token = 0;
    this.loadingOlder = false;
    this.exhausted = false;
    this.lastVolume = null;

    this.chart = createChart(el, {
      autoSize: true,
      layout: {
        background: { type: ColorType.Solid, color: "#161b22" },
        textColor: "#8591a0",
        fontSize: 11,
        // The logo widget injects a <style> element, which the page's CSP refuses; the
        // attribution TradingView's NOTICE asks for is a link in the chart header instead.
        attributionLogo: false,
      },
      grid: { vertLines: { color: "#1d232b" }, horzLines: { color: "#1d232b" } },
      crosshair: { mode: CrosshairMode.Normal },
      localization: { timeFormatter: (t) => this.formatTime(t) },
      rightPriceScale: { borderColor: "#262d36" },
      timeScale: {
        borderColor: "#262d36",
        rightOffset: 8, // room for the last bar's fill markers
        timeVisible: true,
        secondsVisible: false,
        tickMarkFormatter: (t, type) => this.formatTick(t, type),
      },
    });
    this.candles = this.chart.addSeries(CandlestickSeries, {
      upColor: UP,
      downColor: DOWN,
      wickUpColor: UP,
      wickDownColor: DOWN,
      borderVisible: false,
    });
    this.candles.priceScale().applyOptions({ scaleMargins: { top: 0.08, bottom: 0.22 } });
    this.volume = this.chart.addSeries(HistogramSeries, {
      priceFormat: { type: "volume" },
      priceScaleId: "vol",
      lastValueVisible: false,
      priceLineVisible: false,
    });
    this.chart.priceScale("vol").applyOptions({ scaleMargins: { top: 0.82, bottom: 0 } });
    this.markers = createSeriesMarkers(this.candles, []);

    this.chart.subscribeCrosshairMove((p) => {
      const bar = p.time !== undefined ? p.seriesData.get(this.candles) : null;
      this.onOhlc?.(bar || this.bars[this.bars.length - 1] || null);
    });
    this.chart.timeScale().subscribeVisibleLogicalRangeChange((range) => {
      if (range && range.from < 10) this.loadOlder();
    });
  }

  get intraday() {
    return /^\d+$/.test(this.resolution);
  }

  formatTime(t) {
    const p = parts(t, this.intraday);
    const day = `${p.d} ${MONTHS[p.m]} ${p.y}`;
    return this.intraday ? `${day} ${pad(p.hh)}:${pad(p.mm)}` : day;
  }

  formatTick(t, type) {
    const p = parts(t, this.intraday);
    // TickMarkType: 0 year, 1 month, 2 day of month, 3 time, 4 time with seconds
    if (type === 0) return String(p.y);
    if (type === 1) return MONTHS[p.m];
    if (type === 2) return String(p.d);
    return `${pad(p.hh)}:${pad(p.mm)}`;
  }

  async load(symbol, resolution) {
    this.symbol = symbol;
    this.resolution = resolution;
    this.exhausted = false;
    this.lastVolume = null;
    const token = ++this.token;
    const q = new URLSearchParams({ symbol, resolution, countback: String(PAGE) });
    let body;
    try {
      body = await api(`/api/v1/history?${q}`);
    } catch (err) {
      if (token === this.token) {
        this.setBars([]);
        this.onError?.(`history for ${symbol}: ${err.message}`);
      }
      return;
    }
    if (token !== this.token) return; // a newer symbol/resolution won
    this.setBars(body.bars || []);
    this.chart.timeScale().fitContent();
    if (this.bars.length > 120) {
      const n = this.bars.length;
      this.chart.timeScale().setVisibleLogicalRange({ from: n - 120, to: n + 8 });
    }
    this.drawMarkers();
  }

  async loadOlder() {
    if (this.loadingOlder || this.exhausted || !this.bars.length) return;
    this.loadingOlder = true;
    const token = this.token;
    const first = this.bars[0].time;
    const q = new URLSearchParams({
      symbol: this.symbol,
      resolution: this.resolution,
      to: String(first),
      countback: String(PAGE),
    });
    try {
      const body = await api(`/api/v1/history?${q}`);
      if (token !== this.token) return;
      const older = (body.bars || []).filter((b) => b.time < first);
      if (!older.length) {
        this.exhausted = true;
        return;
      }
      this.setBars(older.concat(this.bars));
      this.drawMarkers();
    } catch {
      this.exhausted = true;
    } finally {
      this.loadingOlder = false;
    }
  }

  setBars(bars) {
    this.bars = bars.map((b) => ({
      time: b.time,
      open: b.open,
      high: b.high,
      low: b.low,
      close: b.close,
      volume: b.volume,
    }));
    this.candles.setData(this.bars.map(({ volume, ...c }) => c));
    this.volume.setData(this.bars.map((b) => this.volBar(b)));
    this.el.dataset.bars = String(this.bars.length);
    this.onOhlc?.(this.bars[this.bars.length - 1] || null);
  }

  volBar(b) {
    return { time: b.time, value: b.volume || 0, color: b.close >= b.open ? "#26a69a55" : "#ef535055" };
  }

  /** One stream quote for the charted symbol: extend or roll the live bar. */
  onQuote(q) {
    if (q.symbol !== this.symbol || !this.bars.length || !(q.last > 0)) return;
    const t = barStart(this.resolution, q.time);
    const last = this.bars[this.bars.length - 1];
    const dv = this.lastVolume != null && q.volume >= this.lastVolume ? q.volume - this.lastVolume : 0;
    this.lastVolume = q.volume;
    if (t < last.time) return;
    let bar;
    if (t === last.time) {
      bar = last;
      bar.high = Math.max(bar.high, q.last);
      bar.low = Math.min(bar.low, q.last);
      bar.close = q.last;
      bar.volume = (bar.volume || 0) + dv;
    } else {
      bar = { time: t, open: last.close, high: Math.max(last.close, q.last), low: Math.min(last.close, q.last), close: q.last, volume: dv };
      this.bars.push(bar);
      this.el.dataset.bars = String(this.bars.length);
    }
    const { volume, ...candle } = bar;
    this.candles.update(candle);
    this.volume.update(this.volBar(bar));
  }

  /** Our fills (from orders) as arrows: buys below the bar, sells above. */
  setFills(fills) {
    this.fills = fills;
    this.drawMarkers();
  }

  drawMarkers() {
    if (!this.bars.length) {
      this.markers.setMarkers([]);
      return;
    }
    const first = this.bars[0].time;
    const markers = this.fills
      .filter((f) => f.symbol === this.symbol)
      .map((f) => ({ ...f, bar: barStart(this.resolution, f.time) }))
      .filter((f) => f.bar >= first)
      .sort((a, b) => a.bar - b.bar)
      .map((f) => {
        const buy = f.side === "buy";
        return {
          time: f.bar,
          position: buy ? "belowBar" : "aboveBar",
          shape: buy ? "arrowUp" : "arrowDown",
          color: buy ? "#4c8dff" : "#f0a92a",
          text: `${buy ? "B" : "S"} ${f.quantity} @ ${fmt(f.price)}`,
          id: f.id,
        };
      });
    this.markers.setMarkers(markers);
    this.el.dataset.markers = String(markers.length);
  }
}
