// The dashboard: wires the views to tickserver's GraphQL API.
//
// Start-up: ask for the symbols and intervals (asking for a token if the server wants one),
// subscribe (quotes, signals, bars and book of the selected symbol), then load history by
// query; live messages and history merge in the views. After a reconnect, history is loaded
// again and merged, so nothing is missing or duplicated.

import { AuthError, Live, NetworkError, backoffMs, query } from "./api.js";
import { askToken, getToken, setToken, tokenFromUrl } from "./auth.js";
import { BOOK_DEPTH, BookLadder } from "./book.js";
import { PriceChart } from "./chart.js";
import { frameCount } from "./frame.js";
import { priceDecimals } from "./format.js";
import { SignalFeed } from "./signals.js";
import { ConnectionBadge, ServerStatus } from "./status.js";
import { Watchlist } from "./watchlist.js";

const QUOTE_FIELDS = "symbol tsMs last bid ask bidSize askSize change changePct volume";
const BAR_FIELDS = "symbol interval tsMs open high low close volume final";
const SIGNAL_FIELDS = "symbol ts tsMs rule interval direction value";
const BOOK_FIELDS = "symbol tsMs bids { price size } asks { price size } mid spread microprice imbalance";

const Q = {
  boot: "query Boot { symbols intervals }",
  quotes: `query Quotes { quotes { ${QUOTE_FIELDS} } }`,
  bars: `query Bars($symbol: String!, $interval: String!, $last: Int!) {
    bars(symbol: $symbol, interval: $interval, last: $last, forming: true) { ${BAR_FIELDS} } }`,
  signals: `query Signals($last: Int!) { signals(last: $last) { ${SIGNAL_FIELDS} } }`,
  status: `query Status { status { version uptimeS ready reasons subscribers droppedSubscribers counters
    sources { name kind state reason details } sinks { name kind state reason details } } }`,
};
const S = {
  quotes: `subscription Quotes { quotes { ${QUOTE_FIELDS} } }`,
  signals: `subscription Signals { signals { ${SIGNAL_FIELDS} } }`,
  bars: `subscription Bars($interval: String!, $symbols: [String!]) {
    bars(interval: $interval, symbols: $symbols, forming: true) { ${BAR_FIELDS} } }`,
  book: `subscription Book($symbol: String!, $depth: Int!) { book(symbol: $symbol, depth: $depth) { ${BOOK_FIELDS} } }`,
};
const HISTORY_BARS = 500;
const HISTORY_SIGNALS = 100;
const STATUS_EVERY_MS = 5000;
const PREFS = "tickserver.view";

const $ = (sel) => document.querySelector(sel);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const state = {
  symbols: [],
  intervals: [],
  symbol: null,
  interval: null,
  connection: "connecting",
  chartGeneration: 0,
};

const badge = new ConnectionBadge($("#conn"));
const serverStatus = new ServerStatus($("#server-status"));
const chart = new PriceChart($("#chart"), $("#legend"));
const onDecimals = (sym) => {
  if (sym === state.symbol) chart.setDecimals(priceDecimals(sym));
  watchlist.redrawAll();
  book.invalidate();
};
const watchlist = new Watchlist($("#watchlist"), { onSelect: (s) => select(s), onDecimals });
const book = new BookLadder($("#book tbody"), $("#book-stats"), { onDecimals });
const feed = new SignalFeed($("#signals"), {
  onSelect: (s) => select(s, { focusRow: true }),
  onChange: (items) => chart.setSignals(items),
});

const live = new Live({
  url: `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/graphql`,
  getToken,
  onState: (info) => {
    state.connection = info.state;
    badge.set(info);
  },
  onReconnect: () => resync(),
  onAuth: (err) => needToken(err),
});

// ----------------------------------------------------------------------------- preferences

function loadPrefs() {
  const hash = new URLSearchParams(location.hash.slice(1));
  let saved = {};
  try {
    saved = JSON.parse(localStorage.getItem(PREFS) ?? "{}") ?? {};
  } catch {
    saved = {};
  }
  return { symbol: hash.get("symbol") ?? saved.symbol, interval: hash.get("interval") ?? saved.interval };
}

function savePrefs() {
  try {
    localStorage.setItem(PREFS, JSON.stringify({ symbol: state.symbol, interval: state.interval }));
  } catch {
    // storage disabled: the selection is simply not remembered
  }
}

// ----------------------------------------------------------------------------- queries

let asking = null;

/** Ask for a token (once, however many requests failed), then reconnect with it. */
async function needToken(err) {
  if (!asking) {
    state.connection = "auth";
    badge.set({ state: "auth", code: err.rejected ? 4403 : 4401 });
    asking = askToken({ rejected: err.rejected }).then(() => {
      asking = null;
      live.restart();
    });
  }
  return asking;
}

/** Run a query; on a token problem ask for a token and try again. */
async function q(document, variables) {
  for (;;) {
    try {
      return await query(document, variables, getToken());
    } catch (err) {
      if (err instanceof AuthError) {
        await needToken(err);
        continue;
      }
      throw err;
    }
  }
}

async function loadQuotes() {
  const data = await q(Q.quotes);
  watchlist.update(data.quotes);
}

async function loadBars() {
  const gen = ++state.chartGeneration;
  const { symbol, interval } = state;
  const data = await q(Q.bars, { symbol, interval, last: HISTORY_BARS });
  if (gen === state.chartGeneration) chart.addBars(data.bars);
}

async function loadSignals() {
  const data = await q(Q.signals, { last: HISTORY_SIGNALS });
  feed.add(data.signals);
}

async function loadStatus() {
  const data = await q(Q.status);
  serverStatus.update(data.status);
}

function report(what) {
  return (err) => {
    // A lost connection is shown by the badge and repaired on reconnect.
    if (!(err instanceof NetworkError)) console.warn(`${what}:`, err.message);
  };
}

/** After a reconnect: symbols may have changed (another config), history has gaps. */
async function resync() {
  try {
    const boot = await q(Q.boot);
    applyBoot(boot);
  } catch (err) {
    report("symbols")(err);
    return;
  }
  await Promise.all([
    loadQuotes().catch(report("quotes")),
    loadBars().catch(report("bars")),
    loadSignals().catch(report("signals")),
    loadStatus().catch(report("status")),
  ]);
}

// ----------------------------------------------------------------------------- selection

function applyBoot(boot) {
  state.intervals = boot.intervals;
  const changed = boot.symbols.join() !== state.symbols.join();
  state.symbols = boot.symbols;
  if (changed) watchlist.setSymbols(state.symbols);
  drawIntervals();
  if (!state.symbols.includes(state.symbol)) select(state.symbols[0]);
  if (!state.intervals.includes(state.interval)) setInterval_(defaultInterval());
}

function defaultInterval() {
  return state.intervals.includes("1m") ? "1m" : state.intervals[0];
}

function drawIntervals() {
  const box = $("#intervals");
  if (box.dataset.list === state.intervals.join()) {
    for (const b of box.children) b.setAttribute("aria-checked", String(b.value === state.interval));
    return;
  }
  box.dataset.list = state.intervals.join();
  box.replaceChildren(
    ...state.intervals.map((iv) => {
      const b = document.createElement("button");
      b.type = "button";
      b.value = iv;
      b.textContent = iv;
      b.setAttribute("role", "radio");
      b.setAttribute("aria-checked", String(iv === state.interval));
      return b;
    }),
  );
}

/** Show `sym` in the chart and book, and highlight it in the watchlist. */
function select(sym, { focusRow = false } = {}) {
  if (!sym) return;
  watchlist.select(sym, { focus: focusRow, notify: false });
  if (sym === state.symbol && state.interval) return;
  state.symbol = sym;
  $("#chart-symbol").textContent = sym;
  $("#book-symbol").textContent = sym;
  document.title = `${sym} · tickserver`;
  book.show(sym);
  live.subscribe("book", S.book, { symbol: sym, depth: BOOK_DEPTH }, (d) => book.update(d.book));
  savePrefs();
  if (state.interval) showChart();
}

function setInterval_(iv) {
  if (!iv || iv === state.interval) return;
  state.interval = iv;
  drawIntervals();
  savePrefs();
  if (state.symbol) showChart();
}

function showChart() {
  const { symbol, interval } = state;
  chart.show(symbol, interval);
  $("#chart").dataset.symbol = symbol;
  $("#chart").dataset.interval = interval;
  live.subscribe("bars", S.bars, { interval, symbols: [symbol] }, (d) => chart.addBars(d.bars));
  loadBars().catch(report("bars"));
}

// ----------------------------------------------------------------------------- keyboard

function stepInterval(delta) {
  const i = state.intervals.indexOf(state.interval);
  const j = Math.max(0, Math.min(state.intervals.length - 1, i + delta));
  setInterval_(state.intervals[j]);
}

function onGlobalKey(ev) {
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
  if (ev.target.closest("input, textarea, select, dialog")) return;
  if (ev.key === "[") stepInterval(-1);
  else if (ev.key === "]") stepInterval(1);
  else if (ev.key === "w" || ev.key === "/") watchlist.focus();
  else return;
  ev.preventDefault();
}

// ----------------------------------------------------------------------------- start

async function boot() {
  for (let n = 0; ; n++) {
    try {
      return await q(Q.boot);
    } catch (err) {
      if (!(err instanceof NetworkError)) throw err;
      const wait = backoffMs(n);
      badge.set({ state: "disconnected", attempt: n + 1, retryInMs: wait });
      await sleep(wait);
    }
  }
}

async function main() {
  tokenFromUrl();
  badge.set({ state: "connecting" });
  document.addEventListener("keydown", onGlobalKey);
  $("#intervals").addEventListener("click", (ev) => {
    const b = ev.target.closest("button[value]");
    if (b) setInterval_(b.value);
  });
  $("#forget-token").addEventListener("click", () => {
    setToken(null);
    live.restart();
  });
  matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => chart.applyTheme());

  const first = await boot();
  const prefs = loadPrefs();
  state.intervals = first.intervals;
  state.interval = state.intervals.includes(prefs.interval) ? prefs.interval : defaultInterval();
  state.symbols = first.symbols;
  watchlist.setSymbols(state.symbols);
  drawIntervals();

  live.subscribe("quotes", S.quotes, {}, (d) => watchlist.update(d.quotes));
  live.subscribe("signals", S.signals, {}, (d) => feed.add(d.signals));
  select(state.symbols.includes(prefs.symbol) ? prefs.symbol : state.symbols[0]);
  live.start();

  await Promise.all([
    loadQuotes().catch(report("quotes")),
    loadSignals().catch(report("signals")),
    loadStatus().catch(report("status")),
  ]);
  setInterval(() => {
    if (state.connection === "live" && !document.hidden) loadStatus().catch(report("status"));
  }, STATUS_EVERY_MS);
}

// A read-only handle for diagnostics from the browser console (and the browser tests).
window.tickserverDashboard = {
  state,
  chart: () => chart.snapshot(),
  frames: frameCount,
  quoteUpdates: () => watchlist.updates,
};

main().catch((err) => {
  console.error("dashboard failed to start", err);
  badge.set({ state: "disconnected" });
});
