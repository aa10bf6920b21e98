// Number and time formatting. Prices use a fixed number of decimals per symbol, chosen from
// the price's magnitude and the finest increment seen so far (the API does not send tick
// sizes), so a column never jitters between 2 and 3 decimals.

const MAX_DECIMALS = 6;
const decimalsBySymbol = new Map();

/** Decimals a price needs to be shown exactly (after rounding float noise). */
export function decimalsOf(price) {
  if (!Number.isFinite(price)) return 0;
  const s = (Math.round(Math.abs(price) * 1e6) / 1e6).toFixed(MAX_DECIMALS).replace(/0+$/, "");
  const dot = s.indexOf(".");
  return dot < 0 ? 0 : s.length - dot - 1;
}

/** Minimum decimals for a price of this size (2 for dollars, more for pennies). */
export function magnitudeDecimals(price) {
  const p = Math.abs(price);
  if (!Number.isFinite(p) || p >= 1) return 2;
  if (p >= 0.01) return 4;
  return MAX_DECIMALS;
}

/**
 * Learn from a price of `symbol`; returns true when the symbol's decimals grew.
 * Decimals only ever grow, so columns stay stable.
 */
export function observePrice(symbol, price) {
  if (price === null || price === undefined || !Number.isFinite(price)) return false;
  const want = Math.min(MAX_DECIMALS, Math.max(magnitudeDecimals(price), decimalsOf(price)));
  const have = decimalsBySymbol.get(symbol);
  if (have === undefined || want > have) {
    decimalsBySymbol.set(symbol, want);
    return have !== undefined;
  }
  return false;
}

/** The decimals used for `symbol`'s prices. */
export function priceDecimals(symbol) {
  return decimalsBySymbol.get(symbol) ?? 2;
}

const fixedFormats = new Map();
function fixedFormat(d) {
  let f = fixedFormats.get(d);
  if (!f) {
    f = new Intl.NumberFormat(undefined, {
      minimumFractionDigits: d,
      maximumFractionDigits: d,
      useGrouping: true,
    });
    fixedFormats.set(d, f);
  }
  return f;
}

export const DASH = "–";

/** A price of `symbol` with its fixed decimals. */
export function fmtPrice(symbol, v) {
  if (v === null || v === undefined || !Number.isFinite(v)) return DASH;
  return fixedFormat(priceDecimals(symbol)).format(v);
}

/** A number with `d` decimals. */
export function fmtFixed(v, d) {
  if (v === null || v === undefined || !Number.isFinite(v)) return DASH;
  return fixedFormat(d).format(v);
}

/** A signed percentage with 2 decimals: +0.42 %. */
export function fmtPct(v) {
  if (v === null || v === undefined || !Number.isFinite(v)) return DASH;
  const r = Math.round(v * 100) / 100; // no "−0.00%" for a change that rounds to nothing
  const s = fixedFormat(2).format(Math.abs(r));
  return `${r > 0 ? "+" : r < 0 ? "−" : ""}${s}%`;
}

const compact = new Intl.NumberFormat(undefined, {
  notation: "compact",
  maximumFractionDigits: 1,
  minimumFractionDigits: 1,
});
const integer = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });

/** A size or volume: exact below 10,000, compact above (12.3K, 4.5M). */
export function fmtSize(v) {
  if (v === null || v === undefined || !Number.isFinite(v)) return DASH;
  return Math.abs(v) < 10_000 ? integer.format(v) : compact.format(v);
}

const clock = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  hour12: false,
});
const dayClock = new Intl.DateTimeFormat(undefined, {
  month: "short",
  day: "2-digit",
  hour: "2-digit",
  minute: "2-digit",
  hour12: false,
});
const day = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "short", day: "2-digit" });

/** Local wall-clock time of epoch milliseconds: 14:30:05. */
export function fmtClock(ms) {
  return Number.isFinite(ms) ? clock.format(ms) : DASH;
}

/** Local time for a chart label, coarser for longer intervals. */
export function fmtChartTime(ms, intervalSec) {
  if (intervalSec >= 86400) return day.format(ms);
  if (intervalSec >= 3600) return dayClock.format(ms);
  return clock.format(ms);
}

/** A duration in seconds: 3d 4h, 2h 05m, 4m 10s, 12s. */
export function fmtDuration(s) {
  if (!Number.isFinite(s)) return DASH;
  s = Math.max(0, Math.floor(s));
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${String(m).padStart(2, "0")}m`;
  if (m) return `${m}m ${String(sec).padStart(2, "0")}s`;
  return `${sec}s`;
}

/** Seconds in an interval string (1s, 5m, 1h, 1d). */
export function intervalSeconds(interval) {
  const m = /^(\d+)([smhd])$/.exec(interval);
  if (!m) return 0;
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[m[2]];
}
