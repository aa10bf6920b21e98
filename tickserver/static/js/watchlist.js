// The watchlist: one row per symbol with last (flashing on each tick up or down), change %,
// bid/ask and the day's volume. Quotes only update a map; cells are written once per frame,
// and only the ones whose text changed. Keyboard: ↑/↓/Home/End/PageUp/PageDown move the
// focus, Enter or Space selects the focused symbol for the chart and book.

import { renderer } from "./frame.js";
import { fmtPct, fmtPrice, fmtSize, observePrice } from "./format.js";

const COLUMNS = ["last", "changePct", "bid", "ask", "volume"];
const PAGE = 10;
const FLASH_MS = 400; // at most one new flash per row this often
const FLASH_ON_MS = 300; // how long a flash shows

export class Watchlist {
  constructor(table, { onSelect, onDecimals }) {
    this.tbody = table.tBodies[0];
    this.onSelect = onSelect;
    this.onDecimals = onDecimals;
    this.rows = new Map(); // symbol -> {tr, cells, prevLast, flip, shown}
    this.quotes = new Map(); // symbol -> latest quote (not yet drawn, or drawn)
    this.pending = new Set(); // symbols with a quote not drawn yet
    this.flashing = new Set(); // rows whose last price is tinted
    this.selected = null;
    this.updates = 0;
    this.invalidate = renderer("watchlist", () => this.draw());
    this.tbody.addEventListener("click", (ev) => {
      const tr = ev.target.closest("tr[data-symbol]");
      if (tr) this.select(tr.dataset.symbol, { focus: true });
    });
    this.tbody.addEventListener("keydown", (ev) => this.onKey(ev));
  }

  /** Create the rows (keeps rows of symbols still listed). */
  setSymbols(symbols) {
    const keep = new Set(symbols);
    for (const [sym, row] of this.rows) {
      if (!keep.has(sym)) {
        row.tr.remove();
        this.rows.delete(sym);
      }
    }
    for (const sym of symbols) {
      let row = this.rows.get(sym);
      if (!row) {
        row = this.makeRow(sym);
        this.rows.set(sym, row);
      }
      this.tbody.appendChild(row.tr); // keeps the server's order
    }
    const focusable = this.rows.get(this.selected) ?? this.rows.values().next().value;
    this.setRoving(focusable?.tr);
  }

  makeRow(sym) {
    const tr = document.createElement("tr");
    tr.dataset.symbol = sym;
    tr.tabIndex = -1;
    tr.setAttribute("aria-selected", "false");
    const th = document.createElement("th");
    th.scope = "row";
    th.className = "sym";
    const arrow = document.createElement("span");
    arrow.className = "tick-dir";
    arrow.setAttribute("aria-hidden", "true");
    th.append(sym, arrow);
    tr.appendChild(th);
    const cells = {};
    for (const c of COLUMNS) {
      const td = document.createElement("td");
      td.className = `num col-${c}`;
      td.textContent = "–";
      tr.appendChild(td);
      cells[c] = td;
    }
    return { tr, cells, arrow, prevLast: null, flashAt: -Infinity, shown: {} };
  }

  /** Record quotes (from a query or a subscription message); drawn on the next frame. */
  update(quotes) {
    for (const q of quotes) {
      const prev = this.quotes.get(q.symbol);
      // History answered after a newer live quote must not roll the row back.
      if (prev?.tsMs != null && q.tsMs != null && q.tsMs < prev.tsMs) continue;
      this.quotes.set(q.symbol, q);
      this.pending.add(q.symbol);
    }
    this.updates += quotes.length;
    if (quotes.length) this.invalidate();
  }

  draw() {
    const now = performance.now();
    for (const sym of this.pending) {
      const row = this.rows.get(sym);
      const q = this.quotes.get(sym);
      if (!row || !q) continue;
      let grew = false;
      for (const p of [q.last, q.bid, q.ask]) grew = observePrice(sym, p) || grew;
      if (grew) this.onDecimals(sym);
      this.setCell(row, "last", fmtPrice(sym, q.last));
      this.setCell(row, "bid", fmtPrice(sym, q.bid));
      this.setCell(row, "ask", fmtPrice(sym, q.ask));
      this.setCell(row, "volume", fmtSize(q.volume));
      this.setCell(row, "changePct", fmtPct(q.changePct));
      const sign = q.changePct > 0 ? "up" : q.changePct < 0 ? "down" : "flat";
      if (row.shown.sign !== sign) {
        row.shown.sign = sign;
        row.cells.changePct.dataset.sign = sign;
      }
      if (q.last !== null && row.prevLast !== null && q.last !== row.prevLast) {
        const dir = q.last > row.prevLast ? "up" : "down";
        // A new flash at most every FLASH_MS per row: a busy symbol ticks 20+ times a
        // second, and restarting an animation on each tick costs style work for nothing
        // the eye can follow. The arrow always shows the latest direction.
        if (now - row.flashAt >= FLASH_MS || dir !== row.tr.dataset.tick) {
          row.flashAt = now;
          row.cells.last.dataset.flash = dir;
          this.flashing.add(row);
        }
        if (row.tr.dataset.tick !== dir) {
          row.tr.dataset.tick = dir;
          row.arrow.textContent = dir === "up" ? "▲" : "▼";
        }
      }
      if (q.last !== null) row.prevLast = q.last;
    }
    this.pending.clear();
    // Flashes end by a plain attribute change: running CSS animations on every row would
    // cost style work on every frame.
    for (const row of this.flashing) {
      if (now - row.flashAt >= FLASH_ON_MS) {
        delete row.cells.last.dataset.flash;
        this.flashing.delete(row);
      }
    }
    if (this.flashing.size) this.invalidate();
  }

  setCell(row, col, text) {
    if (row.shown[col] !== text) {
      row.shown[col] = text;
      row.cells[col].textContent = text;
    }
  }

  /** Re-format every row (after a symbol's decimals changed). */
  redrawAll() {
    for (const sym of this.quotes.keys()) this.pending.add(sym);
    this.invalidate();
  }

  select(sym, { focus = false, notify = true } = {}) {
    const row = this.rows.get(sym);
    if (!row) return;
    if (this.selected !== sym) {
      const old = this.rows.get(this.selected);
      old?.tr.setAttribute("aria-selected", "false");
      row.tr.setAttribute("aria-selected", "true");
      this.selected = sym;
      if (notify) this.onSelect(sym);
    }
    this.setRoving(row.tr);
    if (focus) row.tr.focus();
  }

  setRoving(tr) {
    if (!tr) return;
    for (const r of this.rows.values()) r.tr.tabIndex = r.tr === tr ? 0 : -1;
  }

  onKey(ev) {
    const tr = ev.target.closest("tr[data-symbol]");
    if (!tr) return;
    const order = [...this.tbody.rows];
    const i = order.indexOf(tr);
    let j = null;
    switch (ev.key) {
      case "ArrowDown":
        j = Math.min(order.length - 1, i + 1);
        break;
      case "ArrowUp":
        j = Math.max(0, i - 1);
        break;
      case "PageDown":
        j = Math.min(order.length - 1, i + PAGE);
        break;
      case "PageUp":
        j = Math.max(0, i - PAGE);
        break;
      case "Home":
        j = 0;
        break;
      case "End":
        j = order.length - 1;
        break;
      case "Enter":
      case " ":
        ev.preventDefault();
        this.select(tr.dataset.symbol, { focus: true });
        return;
      default:
        return;
    }
    ev.preventDefault();
    const next = order[j];
    this.setRoving(next);
    next.focus();
  }

  /** Focus the selected row (or the first). */
  focus() {
    const row = this.rows.get(this.selected) ?? this.rows.values().next().value;
    row?.tr.focus();
  }
}
