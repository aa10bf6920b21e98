// Chart overlays computed in the browser from the bars on screen, with TA-Lib's conventions
// (the server's oracle): EMA seeded with the SMA of its first `period` values, Bollinger
// bands around an SMA with the population standard deviation. Warm-up values are NaN.
// Why client-side: see docs/decisions/0014-dashboard-overlays-computed-in-the-browser.md.

/** Exponential moving average of `values` (array of numbers) -> array of the same length. */
export function ema(values, period) {
  const out = new Array(values.length).fill(NaN);
  if (period < 1 || values.length < period) return out;
  let sum = 0;
  for (let i = 0; i < period; i++) sum += values[i];
  let e = sum / period;
  out[period - 1] = e;
  const a = 2 / (period + 1);
  for (let i = period; i < values.length; i++) {
    e = (values[i] - e) * a + e;
    out[i] = e;
  }
  return out;
}

/** Simple moving average. */
export function sma(values, period) {
  const out = new Array(values.length).fill(NaN);
  if (period < 1) return out;
  let sum = 0;
  for (let i = 0; i < values.length; i++) {
    sum += values[i];
    if (i >= period) sum -= values[i - period];
    if (i >= period - 1) out[i] = sum / period;
  }
  return out;
}

/**
 * Bollinger bands: { upper, middle, lower }, each an array like `values`.
 * The deviation is computed per window (not from running sums) so it stays exact.
 */
export function bollinger(values, period, k) {
  const n = values.length;
  const upper = new Array(n).fill(NaN);
  const middle = sma(values, period);
  const lower = new Array(n).fill(NaN);
  for (let i = period - 1; i < n; i++) {
    const m = middle[i];
    let ss = 0;
    for (let j = i - period + 1; j <= i; j++) {
      const d = values[j] - m;
      ss += d * d;
    }
    const sd = Math.sqrt(ss / period);
    upper[i] = m + k * sd;
    lower[i] = m - k * sd;
  }
  return { upper, middle, lower };
}
