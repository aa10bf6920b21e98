// The order book ladder of the selected symbol: asks above (best ask nearest the middle),
// bids below, each level with its size and a bar for the cumulative depth. Rows are created
// once and rewritten in place; only the latest book is drawn each frame.

import { renderer } from "./frame.js";
import { DASH, fmtFixed, fmtPrice, fmtSize, observePrice } from "./format.js";

export const BOOK_DEPTH = 10;

export class BookLadder {
  constructor(tbody, stats, { onDecimals }) {
    this.tbody = tbody;
    this.stats = stats;
    this.onDecimals = onDecimals;
    this.symbol = null;
    this.book = null;
    this.asks = [];
    this.bids = [];
    for (let i = 0; i < BOOK_DEPTH; i++) this.asks.push(this.makeRow("ask"));
    this.spreadRow = document.createElement("tr");
    this.spreadRow.className = "spread";
    this.spreadCell = document.createElement("td");
    this.spreadCell.colSpan = 3;
    this.spreadRow.appendChild(this.spreadCell);
    for (let i = 0; i < BOOK_DEPTH; i++) this.bids.push(this.makeRow("bid"));
    // Asks are listed best-last so the best ask sits just above the spread row.
    for (let i = BOOK_DEPTH - 1; i >= 0; i--) tbody.appendChild(this.asks[i].tr);
    tbody.appendChild(this.spreadRow);
    for (const r of this.bids) tbody.appendChild(r.tr);
    this.invalidate = renderer("book", () => this.draw());
  }

  makeRow(side) {
    const tr = document.createElement("tr");
    tr.className = side;
    const price = document.createElement("td");
    price.className = "num price";
    const size = document.createElement("td");
    size.className = "num size";
    const cum = document.createElement("td");
    cum.className = "num cum";
    tr.append(price, size, cum);
    return { tr, price, size, cum, shown: {} };
  }

  show(symbol) {
    this.symbol = symbol;
    this.book = null;
    this.invalidate();
  }

  /** Record a book (GraphQL `Book`); drawn on the next frame. */
  update(book) {
    if (book.symbol !== this.symbol) return;
    this.book = book;
    this.invalidate();
  }

  draw() {
    const b = this.book;
    const sym = this.symbol;
    if (!b) {
      for (const r of [...this.asks, ...this.bids]) this.fill(r, null, 0, 1);
      this.spreadCell.textContent = sym ? "waiting for the book…" : "";
      this.stats.textContent = "";
      return;
    }
    let grew = false;
    for (const lv of [...b.asks, ...b.bids]) grew = observePrice(sym, lv.price) || grew;
    if (grew) this.onDecimals(sym);
    const cumAsk = cumulative(b.asks);
    const cumBid = cumulative(b.bids);
    const max = Math.max(cumAsk[cumAsk.length - 1] ?? 0, cumBid[cumBid.length - 1] ?? 0, 1);
    for (let i = 0; i < BOOK_DEPTH; i++) {
      this.fill(this.asks[i], b.asks[i], cumAsk[i], max);
      this.fill(this.bids[i], b.bids[i], cumBid[i], max);
    }
    const spread = b.spread !== null ? fmtPrice(sym, b.spread) : DASH;
    this.spreadCell.textContent = `spread ${spread} · mid ${fmtPrice(sym, b.mid)}`;
    const imb = Number.isFinite(b.imbalance) ? `${fmtFixed(b.imbalance * 100, 0)}%` : DASH;
    this.stats.textContent = `microprice ${fmtPrice(sym, b.microprice)} · imbalance ${imb}`;
  }

  fill(row, level, cum, max) {
    const sym = this.symbol;
    const price = level ? fmtPrice(sym, level.price) : "";
    const size = level ? fmtSize(level.size) : "";
    const total = level ? fmtSize(cum) : "";
    if (row.shown.price !== price) row.price.textContent = row.shown.price = price;
    if (row.shown.size !== size) row.size.textContent = row.shown.size = size;
    if (row.shown.total !== total) row.cum.textContent = row.shown.total = total;
    const depth = level ? (cum / max).toFixed(3) : "0";
    if (row.shown.depth !== depth) {
      row.shown.depth = depth;
      // A CSS custom property set through the CSSOM (allowed by the page's CSP).
      row.tr.style.setProperty("--depth", depth);
    }
  }
}

function cumulative(levels) {
  const out = [];
  let s = 0;
  for (const lv of levels) {
    s += lv.size;
    out.push(s);
  }
  return out;
}
