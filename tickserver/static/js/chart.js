// The price chart: candles with volume for one symbol and interval, EMA and Bollinger
// overlays, and a marker on each bar where a signal fired.
//
// Bars are kept in a map keyed by bar time (seconds), so history from a query, live bars
// from the subscription, and history fetched again after a reconnect merge into one series
// with no duplicated and no missing bars. A closed bar is never replaced by a forming one.
// Drawing happens once per animation frame: appends and updates of the last bar go through
// `series.update()`, anything else (a bar inserted earlier, a new symbol) through `setData()`.

import {
  CandlestickSeries,
  ColorType,
  CrosshairMode,
  HistogramSeries,
  LineSeries,
  LineStyle,
  createChart,
  createSeriesMarkers,
} from "../vendor/lightweight-charts/lightweight-charts.standalone.production.mjs";
import { renderer } from "./frame.js";
import { fmtChartTime, fmtClock, fmtFixed, fmtSize, intervalSeconds, priceDecimals } from "./format.js";
import { bollinger, ema } from "./indicators.js";

/** The overlays drawn on the chart (the server's default indicators use the same periods). */
export const OVERLAYS = { emaFast: 12, emaSlow: 26, bbPeriod: 20, bbK: 2 };
const MAX_BARS = 2000; // kept in memory and on the chart
const TRIM_AT = 2500;

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

function themeColors() {
  return {
    bg: cssVar("--panel"),
    text: cssVar("--muted"),
    grid: cssVar("--grid"),
    border: cssVar("--border"),
    up: cssVar("--up"),
    down: cssVar("--down"),
    upVol: cssVar("--up-vol"),
    downVol: cssVar("--down-vol"),
    emaFast: cssVar("--ema-fast"),
    emaSlow: cssVar("--ema-slow"),
    band: cssVar("--band"),
  };
}

const line = (color, extra = {}) => ({
  color,
  lineWidth: 1,
  priceLineVisible: false,
  lastValueVisible: false,
  crosshairMarkerVisible: false,
  ...extra,
});

export class PriceChart {
  constructor(container, legend) {
    this.legend = legend;
    this.symbol = null;
    this.interval = "1m";
    this.ivSec = 60;
    this.bars = new Map(); // time (s) -> {time, open, high, low, close, volume, final}
    this.sorted = []; // bars drawn, oldest first
    this.pending = new Map(); // time -> bar not drawn yet
    this.reset = true;
    this.signals = [];
    this.markersDirty = false;
    this.decimals = 2;
    const c = themeColors();
    this.colors = c;
    this.chart = createChart(container, {
      autoSize: true,
      layout: {
        background: { type: ColorType.Solid, color: c.bg },
        textColor: c.text,
        fontFamily: getComputedStyle(document.body).fontFamily,
        // The TradingView link is in the page footer: the logo injects an inline <style>,
        // which the page's Content-Security-Policy (style-src 'self') refuses.
        attributionLogo: false,
      },
      grid: { vertLines: { color: c.grid }, horzLines: { color: c.grid } },
      crosshair: { mode: CrosshairMode.Normal },
      rightPriceScale: { borderColor: c.border, scaleMargins: { top: 0.08, bottom: 0.24 } },
      timeScale: {
        borderColor: c.border,
        timeVisible: true,
        secondsVisible: true,
        barSpacing: 9,
        rightOffset: 4,
        tickMarkFormatter: (t) => fmtChartTime(t * 1000, this.ivSec),
      },
      localization: { timeFormatter: (t) => `${fmtChartTime(t * 1000, this.ivSec)}` },
    });
    this.candles = this.chart.addSeries(CandlestickSeries, {
      upColor: c.up,
      downColor: c.down,
      borderUpColor: c.up,
      borderDownColor: c.down,
      wickUpColor: c.up,
      wickDownColor: c.down,
    });
    this.volume = this.chart.addSeries(HistogramSeries, {
      priceScaleId: "volume",
      priceFormat: { type: "volume" },
      lastValueVisible: false,
      priceLineVisible: false,
    });
    this.chart.priceScale("volume").applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
    this.bbUpper = this.chart.addSeries(LineSeries, line(c.band, { lineStyle: LineStyle.Dashed }));
    this.bbMiddle = this.chart.addSeries(LineSeries, line(c.band, { lineStyle: LineStyle.Dotted }));
    this.bbLower = this.chart.addSeries(LineSeries, line(c.band, { lineStyle: LineStyle.Dashed }));
    this.emaFast = this.chart.addSeries(LineSeries, line(c.emaFast, { lineWidth: 2 }));
    this.emaSlow = this.chart.addSeries(LineSeries, line(c.emaSlow, { lineWidth: 2 }));
    this.lines = [this.emaFast, this.emaSlow, this.bbUpper, this.bbMiddle, this.bbLower];
    this.markers = createSeriesMarkers(this.candles, []);
    this.overlay = { emaFast: [], emaSlow: [], upper: [], middle: [], lower: [] };
    this.hover = null;
    this.chart.subscribeCrosshairMove((param) => {
      this.hover = param?.time ?? null;
      this.drawLegend();
    });
    this.invalidate = renderer("chart", () => this.draw());
  }

  /** Show `symbol` on `interval`: clears the chart until history and live bars arrive. */
  show(symbol, interval) {
    this.symbol = symbol;
    this.interval = interval;
    this.ivSec = intervalSeconds(interval) || 60;
    this.bars.clear();
    this.pending.clear();
    this.sorted = [];
    this.reset = true;
    this.markersDirty = true;
    this.setDecimals(priceDecimals(symbol));
    this.invalidate();
  }

  setDecimals(d) {
    this.decimals = d;
    const priceFormat = { type: "price", precision: d, minMove: 10 ** -d };
    this.candles.applyOptions({ priceFormat });
    for (const s of this.lines) s.applyOptions({ priceFormat });
  }

  /** Merge bars (GraphQL `Bar` objects of the shown symbol and interval). */
  addBars(bars) {
    for (const b of bars) {
      if (b.symbol !== this.symbol || b.interval !== this.interval) continue;
      const time = Math.floor(b.tsMs / 1000);
      const known = this.pending.get(time) ?? this.bars.get(time);
      if (known?.final && !b.final) continue; // a late forming update of a closed bar
      this.pending.set(time, {
        time,
        open: b.open,
        high: b.high,
        low: b.low,
        close: b.close,
        volume: b.volume,
        final: b.final,
      });
    }
    if (this.pending.size) this.invalidate();
  }

  /** Signals to mark (all symbols; those of the shown symbol are drawn). */
  setSignals(signals) {
    this.signals = signals;
    this.markersDirty = true;
    this.invalidate();
  }

  applyTheme() {
    const c = themeColors();
    this.colors = c;
    this.chart.applyOptions({
      layout: { background: { type: ColorType.Solid, color: c.bg }, textColor: c.text },
      grid: { vertLines: { color: c.grid }, horzLines: { color: c.grid } },
      rightPriceScale: { borderColor: c.border },
      timeScale: { borderColor: c.border },
    });
    this.candles.applyOptions({
      upColor: c.up,
      downColor: c.down,
      borderUpColor: c.up,
      borderDownColor: c.down,
      wickUpColor: c.up,
      wickDownColor: c.down,
    });
    this.emaFast.applyOptions({ color: c.emaFast });
    this.emaSlow.applyOptions({ color: c.emaSlow });
    for (const s of [this.bbUpper, this.bbMiddle, this.bbLower]) s.applyOptions({ color: c.band });
    this.reset = true;
    this.markersDirty = true;
    this.invalidate();
  }

  draw() {
    let full = this.reset;
    this.reset = false;
    let firstChanged = this.sorted.length;
    if (this.pending.size) {
      const incoming = [...this.pending.values()].sort((a, b) => a.time - b.time);
      this.pending.clear();
      for (const bar of incoming) {
        const last = this.sorted[this.sorted.length - 1];
        const existed = this.bars.has(bar.time);
        this.bars.set(bar.time, bar);
        if (!last || bar.time > last.time) {
          this.sorted.push(bar);
          firstChanged = Math.min(firstChanged, this.sorted.length - 1);
        } else if (bar.time === last.time) {
          this.sorted[this.sorted.length - 1] = bar;
          firstChanged = Math.min(firstChanged, this.sorted.length - 1);
        } else {
          full = true; // an earlier bar (history after a reconnect): redraw everything
          if (!existed) this.markersDirty = true;
        }
      }
      if (full) this.sorted = [...this.bars.values()].sort((a, b) => a.time - b.time);
      if (this.sorted.length > TRIM_AT) {
        for (const b of this.sorted.splice(0, this.sorted.length - MAX_BARS)) this.bars.delete(b.time);
        full = true;
      }
      if (firstChanged < this.sorted.length) this.markersDirty = true;
    }
    if (full || firstChanged < this.sorted.length) this.computeOverlays();
    if (full) {
      this.candles.setData(this.sorted.map(candle));
      this.volume.setData(this.sorted.map((b) => this.volumeBar(b)));
      this.setLine(this.emaFast, this.overlay.emaFast);
      this.setLine(this.emaSlow, this.overlay.emaSlow);
      this.setLine(this.bbUpper, this.overlay.upper);
      this.setLine(this.bbMiddle, this.overlay.middle);
      this.setLine(this.bbLower, this.overlay.lower);
    } else {
      for (let i = firstChanged; i < this.sorted.length; i++) {
        const b = this.sorted[i];
        this.candles.update(candle(b));
        this.volume.update(this.volumeBar(b));
        this.updateLine(this.emaFast, this.overlay.emaFast, i);
        this.updateLine(this.emaSlow, this.overlay.emaSlow, i);
        this.updateLine(this.bbUpper, this.overlay.upper, i);
        this.updateLine(this.bbMiddle, this.overlay.middle, i);
        this.updateLine(this.bbLower, this.overlay.lower, i);
      }
    }
    if (this.markersDirty) {
      this.markersDirty = false;
      this.markers.setMarkers(this.signalMarkers());
    }
    this.drawLegend();
  }

  computeOverlays() {
    const closes = this.sorted.map((b) => b.close);
    const bb = bollinger(closes, OVERLAYS.bbPeriod, OVERLAYS.bbK);
    this.overlay = {
      emaFast: ema(closes, OVERLAYS.emaFast),
      emaSlow: ema(closes, OVERLAYS.emaSlow),
      upper: bb.upper,
      middle: bb.middle,
      lower: bb.lower,
    };
  }

  volumeBar(b) {
    const c = this.colors;
    return { time: b.time, value: b.volume, color: b.close >= b.open ? c.upVol : c.downVol };
  }

  setLine(series, values) {
    series.setData(this.sorted.map((b, i) => point(b.time, values[i])));
  }

  updateLine(series, values, i) {
    series.update(point(this.sorted[i].time, values[i]));
  }

  signalMarkers() {
    const c = this.colors;
    const out = [];
    const seen = new Set(); // one marker per bar and direction, however many rules fired
    for (const s of this.signals) {
      if (s.symbol !== this.symbol) continue;
      const time = Math.floor(s.tsMs / 1000 / this.ivSec) * this.ivSec;
      if (!this.bars.has(time) || seen.has(`${time}${s.direction}`)) continue;
      seen.add(`${time}${s.direction}`);
      const up = s.direction === "up";
      out.push({
        time,
        position: up ? "belowBar" : "aboveBar",
        shape: up ? "arrowUp" : "arrowDown",
        color: up ? c.up : c.down,
        id: `${s.rule}@${s.tsMs}`,
      });
    }
    return out.sort((a, b) => a.time - b.time);
  }

  drawLegend() {
    if (!this.legend) return;
    const bar = (this.hover !== null && this.bars.get(this.hover)) || this.sorted[this.sorted.length - 1];
    if (!bar) {
      this.legend.textContent = "waiting for bars…";
      return;
    }
    const d = this.decimals;
    const i = this.sorted.indexOf(bar);
    const ov = (arr) => (i >= 0 && Number.isFinite(arr[i]) ? fmtFixed(arr[i], d) : "–");
    this.legend.textContent =
      `${fmtClock(bar.time * 1000)}  O ${fmtFixed(bar.open, d)}  H ${fmtFixed(bar.high, d)}  ` +
      `L ${fmtFixed(bar.low, d)}  C ${fmtFixed(bar.close, d)}  V ${fmtSize(bar.volume)}  ·  ` +
      `EMA${OVERLAYS.emaFast} ${ov(this.overlay.emaFast)}  EMA${OVERLAYS.emaSlow} ${ov(this.overlay.emaSlow)}` +
      `  BB ${ov(this.overlay.upper)} / ${ov(this.overlay.lower)}${bar.final ? "" : "  (forming)"}`;
  }

  /** What is drawn, for diagnostics and tests. */
  snapshot() {
    return {
      symbol: this.symbol,
      interval: this.interval,
      candles: this.candles.data().map((b) => ({ ...b })),
      volume: this.volume.data().length,
      emaFast: this.emaFast.data().filter((p) => "value" in p).length,
      bbUpper: this.bbUpper.data().filter((p) => "value" in p).length,
      markers: this.markers.markers().map((m) => ({ ...m })),
    };
  }
}

function candle(b) {
  return { time: b.time, open: b.open, high: b.high, low: b.low, close: b.close };
}

function point(time, v) {
  return Number.isFinite(v) ? { time, value: v } : { time };
}
