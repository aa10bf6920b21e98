// The live signals feed: newest first, de-duplicated (history fetched again after a
// reconnect overlaps what the subscription already delivered), at most MAX items.

import { renderer } from "./frame.js";
import { fmtClock, fmtFixed } from "./format.js";

const MAX = 200;

function keyOf(s) {
  return `${s.symbol}|${s.tsMs}|${s.rule}|${s.direction}`;
}

export class SignalFeed {
  constructor(list, { onSelect, onChange }) {
    this.list = list;
    this.onSelect = onSelect;
    this.onChange = onChange;
    this.items = []; // oldest first
    this.keys = new Set();
    this.drawn = new Map(); // key -> <li>
    this.invalidate = renderer("signals", () => this.draw());
    list.addEventListener("click", (ev) => {
      const btn = ev.target.closest("button[data-symbol]");
      if (btn) this.onSelect(btn.dataset.symbol);
    });
  }

  /** Add signals (any order); duplicates are ignored. */
  add(signals) {
    let added = 0;
    for (const s of signals) {
      const k = keyOf(s);
      if (this.keys.has(k)) continue;
      this.keys.add(k);
      this.items.push(s);
      added += 1;
    }
    if (!added) return;
    this.items.sort((a, b) => a.tsMs - b.tsMs);
    while (this.items.length > MAX) this.keys.delete(keyOf(this.items.shift()));
    this.onChange(this.items);
    this.invalidate();
  }

  draw() {
    const want = new Set(this.items.map(keyOf));
    for (const [k, li] of this.drawn) {
      if (!want.has(k)) {
        li.remove();
        this.drawn.delete(k);
      }
    }
    // Newest first: walk oldest -> newest, inserting each new item at the top.
    let anchor = null;
    for (let i = this.items.length - 1; i >= 0; i--) {
      const s = this.items[i];
      const k = keyOf(s);
      let li = this.drawn.get(k);
      if (!li) {
        li = this.makeItem(s);
        this.drawn.set(k, li);
        this.list.insertBefore(li, anchor ? anchor.nextSibling : this.list.firstChild);
      }
      anchor = li;
    }
    this.list.dataset.count = String(this.items.length);
  }

  makeItem(s) {
    const li = document.createElement("li");
    li.className = `signal ${s.direction}`;
    li.dataset.symbol = s.symbol;
    li.dataset.rule = s.rule;
    const time = document.createElement("time");
    time.dateTime = s.ts;
    time.textContent = fmtClock(s.tsMs);
    const dir = document.createElement("span");
    dir.className = "dir";
    dir.textContent = s.direction === "up" ? "▲" : "▼";
    dir.setAttribute("aria-label", s.direction === "up" ? "bullish" : "bearish");
    const sym = document.createElement("button");
    sym.type = "button";
    sym.className = "sym";
    sym.dataset.symbol = s.symbol;
    sym.textContent = s.symbol;
    sym.title = `Show ${s.symbol}`;
    const rule = document.createElement("span");
    rule.className = "rule";
    rule.textContent = `${s.rule} · ${s.interval}`;
    const value = document.createElement("span");
    value.className = "num value";
    // The value is rule-specific (an EMA gap, an RSI level, a close): 4 significant-ish digits.
    const v = s.value;
    value.textContent = Number.isFinite(v) ? fmtFixed(v, Math.abs(v) >= 100 ? 2 : Math.abs(v) >= 1 ? 3 : 4) : "";
    li.append(time, dir, sym, rule, value);
    return li;
  }
}
